"""What the dashboard's forms accept and its pages show: dates from a form, amounts with
grouped thousands, and the links between pages. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Final
from urllib.parse import urlencode

from birdbalance.errors import DateError


def day_start(text: str, parameter: str) -> str:
    """``YYYY-MM-DD`` as the RFC 3339 start of that UTC day."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise DateError(f"{parameter} must be a date such as 2026-11-22") from None
    return f"{day.isoformat()}T00:00:00Z"


def day_after(text: str, parameter: str) -> str:
    """The RFC 3339 start of the UTC day after ``YYYY-MM-DD`` (an inclusive end date)."""
    day = date.fromisoformat(day_start(text, parameter)[:10])
    try:
        return f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z"
    except OverflowError:
        raise DateError(f"{parameter} is past the last date there is") from None


def entry_filters(
    query: Mapping[str, str],
) -> tuple[dict[str, str | None], str | None, str | None, str | None]:
    """The account page's entry filters from its query (``kind``, ``from``, ``to``,
    ``reference``; empty is none), the ``[start, end)`` times of its dates, and what is
    wrong with them (then no dates apply)."""
    filters = {name: query.get(name) or None for name in ("kind", "from", "to", "reference")}
    try:
        start = None if filters["from"] is None else day_start(filters["from"], "from")
        end = None if filters["to"] is None else day_after(filters["to"], "to")
    except DateError as exc:
        return filters, None, None, str(exc)
    return filters, start, end, None


def grouped(amount: str) -> str:
    """``"1234567.5"`` -> ``"1,234,567.5"``: thousands grouped, digits untouched."""
    sign = "-" if amount.startswith("-") else ""
    whole, dot, fraction = amount.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}{dot}{fraction}"


def query_url(path: str, params: Mapping[str, str | None]) -> str:
    kept = {k: v for k, v in params.items() if v}
    return f"{path}?{urlencode(kept)}" if kept else path


def account_url(account_id: str, params: Mapping[str, str | None]) -> str:
    return query_url(f"/dashboard/accounts/{account_id}", params)


#: The deepest page of a parent's sub-accounts the dashboard links to.
MAX_PAGE_OFFSET: Final = 100_000


def page_offset(text: str | None) -> int:
    """A page's first row (0-based) from a ``from`` parameter; 0 if it is not one."""
    if text is None or not text.isdigit() or len(text) > 6:
        return 0
    return min(int(text), MAX_PAGE_OFFSET)


def usage_query(
    q: Mapping[str, str], mode: str
) -> tuple[str | None, dict[str, str | None], dict[str, str | None]]:
    """The account page's usage breakdown form: the key (None: no breakdown asked), the
    arguments of :meth:`Service.usage_by` (days as UTC midnights, ``to`` inclusive), and
    the form's values to show again."""
    by = (q.get("by") or "").strip() or None
    first, last = q.get("by_from") or None, q.get("by_to") or None
    form = {"by": by, "by_from": first, "by_to": last, "mode": mode}
    args: dict[str, str | None] = {
        "by": by,
        "start": None if first is None else f"{first}T00:00:00Z",
        "end": None if last is None else _next_midnight(last),
        "mode": mode,
    }
    return by, args, form


def _next_midnight(day: str) -> str:
    """The UTC midnight after ``day`` (a bad day is passed on for the API to refuse)."""
    try:
        return (date.fromisoformat(day) + timedelta(days=1)).isoformat() + "T00:00:00Z"
    except ValueError:
        return day
