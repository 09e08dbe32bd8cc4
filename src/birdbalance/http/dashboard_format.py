"""What the dashboard's forms accept and its pages show: dates from a form, amounts with
grouped thousands, and the links between pages. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
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
