"""The typed records that cross the storage seam, in both directions."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from birdbalance.alert_records import (
    DELIVERY_STATUSES as DELIVERY_STATUSES,
    AlertRule as AlertRule,
    Delivery as Delivery,
    DueDelivery as DueDelivery,
    Event as Event,
    NewAlertRule as NewAlertRule,
    NewWebhook as NewWebhook,
    Recharge as Recharge,
    Webhook as Webhook,
)
from birdbalance.errors import ServiceError
from birdbalance.ledger import EntryKind, HoldStatus, Mode, Payment
from birdbalance.spending import SpendLimit, spendable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BalanceView:
    """What ``GET /balance`` needs: one row, found by key digest."""

    payment: Payment
    asset: str
    scale: int
    balance_minor: int


@dataclass(frozen=True, slots=True)
class LedgerBalance:
    """One ledger's balance, for monitoring (``held_minor`` is reserved by holds)."""

    account_id: str
    mode: Mode
    asset: str
    scale: int
    balance_minor: int
    held_minor: int


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """The webhook outbox: deliveries still to make, and the oldest one's creation time."""

    pending: int
    oldest_pending_at: str | None


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    balance_minor: int
    entry_count: int
    #: Reserved by pending holds; ``balance_minor - held_minor`` is available.
    held_minor: int = 0


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str | None
    payment: Payment
    asset: str
    scale: int
    credit_limit_minor: int | None
    metadata: dict[str, Any]
    created_at: str
    live: LedgerTotals
    test: LedgerTotals
    parent_id: str | None = None
    #: A shared sub-account's parent, whose ledger it spends (never changes); else None.
    funding_id: str | None = None
    spend_limit: SpendLimit | None = None
    #: A shared sub-account's spending now, per mode (read with the account).
    shared: dict[Mode, SharedSpend] | None = None


@dataclass(frozen=True, slots=True)
class SharedSpend:
    """One mode of a shared sub-account now: its parent's available amount, and its net
    usage in the current period of its limit (all time without one)."""

    parent_available_minor: int
    spent_minor: int
    limit: SpendLimit | None

    @property
    def available_minor(self) -> int:
        """What its keys' ``GET /balance`` shows: :func:`birdbalance.spending.spendable`."""
        return spendable(self.parent_available_minor, self.limit, self.spent_minor)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    account_id: str
    mode: Mode
    hint: str
    created_at: str
    revoked_at: str | None
    #: A rotated key stays live until then, beside the key that replaced it.
    expires_at: str | None = None


class TokenScope(enum.Enum):
    """What an admin token may do: ``read`` (GET) or ``write`` (everything)."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class AdminToken:
    id: str
    name: str
    scope: TokenScope
    hint: str
    created_at: str
    revoked_at: str | None
    #: The account whose subtree the token is confined to (None: every account).
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewToken:
    name: str
    scope: TokenScope
    token_hash: bytes
    hint: str
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One admin action: who, what, on what, from where, and its answer's status."""

    actor: str
    action: str
    target: str | None
    address: str | None
    status: int
    detail: dict[str, Any]
    #: Set by the store when the record is appended.
    seq: int = 0
    at: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    account_id: str
    mode: Mode
    seq: int
    kind: EntryKind
    amount_minor: int
    balance_after_minor: int
    refund_of: str | None
    reference: str | None
    metadata: dict[str, Any]
    created_at: str
    #: The hold a capture's charge settles.
    hold_id: str | None = None
    #: The shared sub-account this entry (on its parent's ledger) was posted for.
    attributed_to: str | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """An amount set aside on a ledger until it is captured, voided or expires."""

    id: str
    account_id: str
    mode: Mode
    amount_minor: int
    status: HoldStatus
    captured_minor: int
    expires_at: str
    reference: str | None
    metadata: dict[str, Any]
    created_at: str
    resolved_at: str | None


@dataclass(frozen=True, slots=True)
class HoldResult:
    """A hold as it is after a write on it, and the charge its capture posted, if any."""

    hold: Hold
    capture: PostedEntry | None
    replayed: bool
    #: The account's scale, for rendering the amounts.
    scale: int


@dataclass(frozen=True, slots=True)
class SubAccounts:
    """A page of an account's direct sub-accounts, and the totals of all of them."""

    page: Page[Account]
    count: int
    #: The sums of their live ledgers: balance and what holds reserve.
    live_balance_minor: int
    live_held_minor: int
    #: Each listed sub-account's live usage (charges less refunds) this UTC month.
    month_usage_minor: dict[str, int]


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """The usage of the entries whose metadata gives one value (None: no value)."""

    value: str | None
    usage_minor: int
    entries: int


@dataclass(frozen=True, slots=True)
class UsageBreakdown:
    """A ledger's usage over a range by a metadata key, largest first."""

    account: Account
    groups: list[UsageGroup]
    #: More groups than were returned.
    truncated: bool


@dataclass(frozen=True, slots=True)
class NewTransfer:
    """Move ``amount_minor`` from one account's ledger to another's, in ``mode``."""

    from_account: str
    to_account: str
    mode: Mode
    amount_minor: int
    reference: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer as stored: the two entries it wrote, one on each ledger."""

    id: str
    from_account: str
    to_account: str
    mode: Mode
    amount_minor: int
    from_entry: str
    to_entry: str
    reference: str | None
    metadata: dict[str, Any]
    created_at: str
    #: The scale of the asset both accounts hold, for rendering the amount.
    scale: int


@dataclass(frozen=True, slots=True)
class TransferResult:
    """A transfer and its two legs (source first) as a write or a replay found them."""

    transfer: Transfer
    legs: tuple[PostedEntry, PostedEntry]
    replayed: bool


@dataclass(frozen=True, slots=True)
class BalanceAt:
    """A ledger's balance at a point in time: that of its last entry at or before it."""

    balance_minor: int
    seq: int
    entry_at: str | None
    #: The account the ledger belongs to (read in the same lookup).
    account: Account


@dataclass(frozen=True, slots=True)
class PostedEntry:
    """The result of a ledger write: the entry and the account it moved."""

    entry: Entry
    payment: Payment
    asset: str
    scale: int
    replayed: bool


def entry_outcome(answer: PostedEntry | ServiceError) -> tuple[int, str]:
    """An entry request's status and outcome, as metrics and the audit log name it:
    ``posted``, ``replayed``, ``refused`` (4xx) or ``failed`` (5xx)."""
    if isinstance(answer, ServiceError):
        return answer.status_code, "failed" if answer.status_code >= 500 else "refused"
    return 201, "replayed" if answer.replayed else "posted"


@dataclass(frozen=True, slots=True)
class NewAccount:
    name: str | None
    payment: Payment
    asset: str
    scale: int
    credit_limit_minor: int | None
    metadata: dict[str, Any]
    #: The account it is a sub-account of (same asset; at most three levels).
    parent_id: str | None = None
    #: Spends its parent's balance instead of holding its own.
    shared: bool = False
    spend_limit: SpendLimit | None = None


@dataclass(frozen=True, slots=True)
class NewKey:
    account_id: str
    mode: Mode
    key_hash: bytes
    hint: str


@dataclass(frozen=True, slots=True)
class NewEntry:
    account_id: str
    mode: Mode
    kind: EntryKind
    #: Positive magnitude for top-ups, charges and refunds; signed for adjustments.
    amount_minor: int
    refund_of: str | None
    reference: str | None
    metadata: dict[str, Any]
    #: Set by the store: the shared sub-account this entry on its parent's ledger is for.
    attributed_to: str | None = None


@dataclass(frozen=True, slots=True)
class NewHold:
    account_id: str
    mode: Mode
    amount_minor: int
    expires_at: str
    reference: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewCapture:
    """Charge all of a hold (``amount_minor`` None) or part of it."""

    hold_id: str
    amount_minor: int | None
    reference: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewVoid:
    """Release a hold without charging anything."""

    hold_id: str


@dataclass(frozen=True, slots=True)
class BulkLedger:
    """A ledger a bulk request touched, as the request left it."""

    account_id: str
    mode: Mode
    payment: Payment
    asset: str
    scale: int
    balance_minor: int
    held_minor: int


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """What a bulk request did: one result per operation, in order (a posted entry, a
    hold's result, or the error that refused it), and the ledgers it touched."""

    results: list[PostedEntry | HoldResult | ServiceError]
    ledgers: list[BulkLedger]


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A write's ``Idempotency-Key`` and the fingerprint of the request that carried it."""

    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Statement:
    """A ledger over ``[start, end)``: opening + the entries' amounts = closing, always.

    ``totals_minor`` and ``counts`` cover every entry of the range by kind; ``entries`` is
    one page of them (in seq order) and ``next_cursor`` the seq to continue after.
    """

    account: Account
    opening_minor: int
    closing_minor: int
    totals_minor: dict[str, int]
    counts: dict[str, int]
    entries: list[Entry]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """What the entries list may be narrowed to; every field None means all entries.

    ``start``/``end`` bound ``created_at`` as ``[start, end)`` in the stored form; a
    ``reference`` matches exactly.
    """

    kind: EntryKind | None = None
    start: str | None = None
    end: str | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class DayTotal:
    """One UTC day's entries of one kind: their sum and count, and the balance after the
    day's last entry of that kind (``last_seq``)."""

    day: str
    kind: EntryKind
    amount_minor: int
    entries: int
    last_seq: int
    balance_after_minor: int


@dataclass(frozen=True, slots=True)
class DailySeries:
    """A ledger's days ``[first_day, last_day]``: its account, the balance before them and
    their totals (days without entries have no rows)."""

    account: Account
    opening_minor: int
    days: list[DayTotal]


#: One operation of a bulk request: what it writes, and its own ``Idempotency-Key``.
BulkOp = tuple[NewEntry | NewHold | NewCapture | NewVoid, Idempotency]
