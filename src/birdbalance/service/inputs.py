"""Untrusted input to typed values: the parsing the operations share (event types, page
sizes and cursors, modes, entry filters, auto-recharge settings), their limits, and the
fingerprint that makes two requests "the same" for an ``Idempotency-Key``."""

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from birdbalance.alerts import EventType
from birdbalance.bulk_requests import BulkHold, EntryOperation
from birdbalance.errors import AmountError, InvalidParameter, TimestampError
from birdbalance.ledger import EntryKind, Mode
from birdbalance.money import parse_amount
from birdbalance.records import (
    EntryFilter,
    NewEntry,
    NewHold,
    Recharge,
)
from birdbalance.request_shapes import (
    DEFAULT_HOLD_EXPIRY_S,
    DEFAULT_RECHARGE_MAX_FAILURES,
    MAX_HOLD_EXPIRY_S,
    MAX_SECONDS_DIGITS,
    AmountText,
    NewEntry as NewEntryBody,
    NewHold as NewHoldBody,
    NewRecharge,
    SecondsText,
    SpendingLimit as SpendingLimitBody,
    metadata_of,
    mode_of,
    set_or_none,
)
from birdbalance.spending import SpendLimit, SpendPeriod
from birdbalance.storage import MAX_PAGE_SIZE
from birdbalance.timestamps import parse_timestamp, timestamp_after
from birdbalance.validation import (
    MAX_REFERENCE_CHARS,
    filter_text,
    is_digits,
    page_limit,
    resource_id,
)

DEFAULT_PAGE_SIZE: Final = 50

#: Alert rules per account (both ledgers together); each write reads them all.
MAX_ALERTS_PER_ACCOUNT: Final = 20

#: Webhook subscriptions in all; each event fans out to those that match.
MAX_WEBHOOKS: Final = 100

MAX_AUDIT_FILTER_CHARS: Final = 255


def fingerprint(operation: str, target: str, body: Mapping[str, Any]) -> str:
    """What makes two requests "the same" for an ``Idempotency-Key``.

    The operation, its target and the body's canonical JSON; ``9.2`` and ``"9.2"`` are
    the same amount and so the same request.
    """
    canonical = json.dumps([operation, target, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def event_types(value: Any) -> tuple[str, ...]:
    """``events``: a list (or comma-separated string) of event types; empty means all."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    known = {t.value for t in EventType}
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidParameter("events must be a list of event types", "events")
    chosen = tuple(sorted({i.strip() for i in items if i.strip()}))
    unknown = [i for i in chosen if i not in known]
    if unknown:
        raise InvalidParameter(
            f"unknown event type {unknown[0][:40]!r}; known: {', '.join(sorted(known))}",
            "events",
        )
    return chosen


def minor(
    text: AmountText | msgspec.UnsetType | None, name: str, *, allow_negative: bool = False
) -> int | None:
    """An amount field in minor units (``None`` when absent), by :mod:`birdbalance.money`'s
    strict grammar; ``name`` is its path (``recharge.amount``), the error's parameter the
    top-level field."""
    if text is None or text is msgspec.UNSET:
        return None
    assert isinstance(text, str)
    try:
        return parse_amount(text, allow_negative=allow_negative)
    except AmountError as exc:
        raise InvalidParameter(f"{name} {exc}", name.split(".", 1)[0]) from None


def seconds(
    value: SecondsText | msgspec.UnsetType | None,
    name: str,
    *,
    default: int,
    minimum: int,
    maximum: int,
) -> int:
    """A whole number of seconds in ``[minimum, maximum]`` (``default`` when absent)."""
    if value is None or value is msgspec.UNSET:
        return default
    assert isinstance(value, str)
    if is_digits(value) and len(value) <= MAX_SECONDS_DIGITS and minimum <= int(value) <= maximum:
        return int(value)
    raise InvalidParameter(
        f"{name} must be a whole number of seconds, {minimum} to {maximum}", name
    )


def id_page_size(cursor: str | None, limit: str | None) -> int:
    """Check a listing's id cursor (one this API gave out) and return its page size."""
    size = page_limit(limit, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    if cursor is not None:
        resource_id(cursor, "cursor")
    return size


def parse_mode(value: str | None) -> Mode:
    if value not in (None, Mode.LIVE.value, Mode.TEST.value):
        raise InvalidParameter("mode must be live or test", "mode")
    return Mode(value or "live")


def entry_filter(
    *, kind: str | None, start: str | None, end: str | None, reference: str | None
) -> EntryFilter:
    """The entries list's filters from query text: ``kind``, ``from``/``to`` (RFC 3339
    times, ``[from, to)``) and ``reference`` (exact)."""
    if kind is not None and kind not in {k.value for k in EntryKind}:
        raise InvalidParameter("kind must be topup, charge, refund or adjustment", "kind")
    reference = filter_text(reference, "reference", MAX_REFERENCE_CHARS)
    times: dict[str, str | None] = {}
    for name, text in (("from", start), ("to", end)):
        try:
            times[name] = None if text is None else parse_timestamp(text)
        except TimestampError as exc:
            raise InvalidParameter(f"{name} must be an RFC 3339 time: {exc}", name) from None
    return EntryFilter(
        kind=None if kind is None else EntryKind(kind),
        start=times["from"],
        end=times["to"],
        reference=reference or None,
    )


def check_seq_cursor(cursor: str | None) -> None:
    """A ledger page's cursor is the seq this API gave out: digits, and not too many."""
    if cursor is not None and not (is_digits(cursor) and len(cursor) <= 18):
        raise InvalidParameter("cursor is not one this API gave out", "cursor")


def recharge_input(value: NewRecharge | None, below_minor: int) -> Recharge | None:
    """``{"amount": "50"}`` or ``{"up_to": "200"}``, and ``max_failures`` (1-100, default 3)."""
    if value is None:
        return None
    amount = minor(value.amount, "recharge.amount")
    up_to = minor(value.up_to, "recharge.up_to")
    if (amount is None) == (up_to is None):
        raise InvalidParameter("recharge takes one of amount and up_to", "recharge")
    if amount is not None and amount <= 0:
        raise InvalidParameter("recharge amount must be positive", "recharge")
    if up_to is not None and up_to <= below_minor:
        raise InvalidParameter("recharge up_to must be above the rule's below", "recharge")
    max_failures = set_or_none(value.max_failures)
    if max_failures is None:
        max_failures = DEFAULT_RECHARGE_MAX_FAILURES
    return Recharge(amount, up_to, max_failures)


def new_entry(account_id: str, kind: EntryKind, request: NewEntryBody | EntryOperation) -> NewEntry:
    """An entry's fields, from a single write's body or a bulk operation, as the store
    posts it (the amount by the strict grammar, a refund's charge as an id)."""
    amount = minor(request.amount, "amount", allow_negative=kind is EntryKind.ADJUSTMENT)
    assert amount is not None
    charge = getattr(request, "charge", None)
    return NewEntry(
        account_id,
        mode_of(request.mode),
        kind,
        amount,
        None if charge is None else resource_id(charge, "charge"),
        set_or_none(request.reference),
        metadata_of(request.metadata),
    )


def new_hold(account_id: str, request: NewHoldBody | BulkHold) -> NewHold:
    """A hold's fields, from a single write's body or a bulk operation, as the store
    reserves it (``expires_in`` from now, 1 s to 30 days, a day if absent)."""
    amount = minor(request.amount, "amount")
    assert amount is not None
    expires_in_s = seconds(
        request.expires_in,
        "expires_in",
        default=DEFAULT_HOLD_EXPIRY_S,
        minimum=1,
        maximum=MAX_HOLD_EXPIRY_S,
    )
    return NewHold(
        account_id,
        mode_of(request.mode),
        amount,
        timestamp_after(expires_in_s),
        set_or_none(request.reference),
        metadata_of(request.metadata),
    )


def spend_limit_of(request: SpendingLimitBody | None) -> SpendLimit | None:
    """A spending limit's body as the ledger's rule (an amount above zero)."""
    if request is None:
        return None
    amount = minor(request.amount, "spending_limit.amount")
    assert amount is not None
    if amount <= 0:
        raise InvalidParameter("spending_limit.amount must be above 0", "spending_limit")
    return SpendLimit(amount, SpendPeriod(request.period))
