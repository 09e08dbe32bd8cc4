"""The admin API's response shapes, each defined once as a typed model.

:mod:`birdbalance.representations` builds these from the storage records and renders
them (the JSON of the admin API and of the CLI's ``--json``); the OpenAPI document's
response schemas are generated from them (:func:`schemas`), with ``required`` for every
field that is always present and exact types (a field that can be ``null`` says so).
A test renders real responses through them and holds the served answers to the schemas.

Amounts are exact decimal strings in major units (:data:`Amount`); ``type`` is
MessageBird's balance type. Request bodies are parsed by :mod:`birdbalance.validation`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Generic, TypeVar

import msgspec

from birdbalance.account_shapes import (
    Account as Account,
    AccountSpendingLimit as AccountSpendingLimit,
    Balances as Balances,
    Ledger as Ledger,
    SharedBalance as SharedBalance,
    SharedLedger as SharedLedger,
    SubAccount as SubAccount,
    SubAccounts as SubAccounts,
    SubAccountTotals as SubAccountTotals,
)
from birdbalance.shape_types import (
    ID_PATTERN as ID_PATTERN,
    AlertState as AlertState,
    Amount as Amount,
    Day as Day,
    DeliveryStatus as DeliveryStatus,
    EventKind as EventKind,
    HoldState as HoldState,
    Id as Id,
    KeyStatus as KeyStatus,
    Kind as Kind,
    Metadata as Metadata,
    Mode as Mode,
    Payment as Payment,
    Scope as Scope,
    Timestamp as Timestamp,
    _Shape as _Shape,
)


class ApiKey(_Shape):
    id: Id
    account_id: Id
    mode: Mode
    hint: str
    status: KeyStatus
    created_at: Timestamp
    expires_at: Annotated[
        Timestamp | None, msgspec.Meta(description="A rotated key stops working then.")
    ]
    revoked_at: Timestamp | None
    key: Annotated[str, msgspec.Meta(description="Only in the creating response.")] | (
        msgspec.UnsetType
    ) = msgspec.UNSET


class RotatedKey(_Shape):
    key: ApiKey
    previous: ApiKey


class AdminToken(_Shape):
    id: Id
    name: str
    scope: Scope
    hint: str
    created_at: Timestamp
    revoked_at: Timestamp | None
    account: Annotated[
        Id | None,
        msgspec.Meta(description="Confined to this account and its sub-accounts (null: all)."),
    ] = None
    token: str | msgspec.UnsetType = msgspec.UNSET


class AuditRecord(_Shape):
    seq: int | None
    at: Timestamp | None
    actor: str
    action: str
    target: str | None
    address: str | None
    status: int
    detail: dict[str, Any]


class Entry(_Shape):
    id: Id
    account_id: Id
    mode: Mode
    seq: Annotated[int, msgspec.Meta(ge=1)]
    kind: Kind
    amount: Amount
    balance_after: Amount
    refund_of: Id | None
    reference: str | None
    metadata: Metadata
    created_at: Timestamp
    hold: Annotated[Id | None, msgspec.Meta(description="The hold a capture's charge settles.")]
    attributed_to: Annotated[
        Id | None,
        msgspec.Meta(
            description="The shared sub-account this entry on its parent's ledger is for."
        ),
    ] = None


class EntryBalance(_Shape):
    """The ledger's balance after an entry."""

    mode: Mode
    payment: Payment
    type: str
    amount: Amount


class PostedEntry(_Shape):
    entry: Entry
    balance: EntryBalance


class Hold(_Shape):
    id: Id
    account_id: Id
    mode: Mode
    amount: Amount
    status: HoldState
    captured: Amount
    expires_at: Timestamp
    reference: str | None
    metadata: Metadata
    created_at: Timestamp
    resolved_at: Timestamp | None


class HoldResult(_Shape):
    """A hold; after a capture, also the charge it posted and the balance after it."""

    hold: Hold
    entry: Entry | msgspec.UnsetType = msgspec.UNSET
    balance: EntryBalance | msgspec.UnsetType = msgspec.UNSET


class Transfer(_Shape):
    """An amount moved between two ledgers: the two entries it wrote, one on each."""

    id: Id
    from_: Id = msgspec.field(name="from")
    to: Id
    mode: Mode
    amount: Amount
    from_entry: Id
    to_entry: Id
    reference: str | None
    metadata: Metadata
    created_at: Timestamp


class TransferResult(_Shape):
    """A transfer, and its two legs with each ledger's balance after it (source first)."""

    transfer: Transfer
    legs: list[PostedEntry]


class ErrorItem(_Shape):
    """One of MessageBird's errors: its code, what went wrong, and the parameter."""

    code: int
    description: str
    parameter: str | None


class BulkResult(_Shape):
    """One operation's result. Applied: ``status`` 201 and what its single write answers
    (``entry`` and ``balance`` for an entry; ``hold``, and for a capture its ``entry`` and
    ``balance``). Refused: the status and ``errors`` its single write would have had (409
    for an operation of a linked group that another operation failed)."""

    index: Annotated[int, msgspec.Meta(ge=0)]
    status: int
    replayed: Annotated[
        bool | msgspec.UnsetType,
        msgspec.Meta(description="Its key was used before: the earlier result, unchanged."),
    ] = msgspec.UNSET
    hold: Hold | msgspec.UnsetType = msgspec.UNSET
    entry: Entry | msgspec.UnsetType = msgspec.UNSET
    balance: EntryBalance | msgspec.UnsetType = msgspec.UNSET
    errors: list[ErrorItem] | msgspec.UnsetType = msgspec.UNSET


class BulkBalance(_Shape):
    """A ledger the request names, as the request leaves it (a dry run: would leave it)."""

    account_id: Id
    mode: Mode
    payment: Payment
    type: str
    amount: Amount
    pending: Amount
    available: Amount


class BulkAnswer(_Shape):
    dry_run: bool
    #: In the order of the operations.
    results: list[BulkResult]
    balances: list[BulkBalance]


class Recharge(_Shape):
    """Auto-recharge: ``topup.requested`` when the rule goes low, for a fixed ``amount``
    or ``up_to`` a level (one of them); disabled after ``max_failures`` in a row."""

    amount: Amount | None
    up_to: Amount | None
    max_failures: Annotated[int, msgspec.Meta(ge=1, le=100)]
    failures: int
    disabled_at: Timestamp | None


class Alert(_Shape):
    id: Id
    account_id: Id
    mode: Mode
    below: Amount
    hysteresis: Amount
    state: AlertState
    recharge: Recharge | None
    created_at: Timestamp


class RechargeRequest(_Shape):
    """What a ``topup.requested`` event asks for."""

    amount: Amount
    attempt: int
    max_failures: int


class EventData(_Shape):
    """The ledger after the move that raised the event, and what caused it."""

    account_id: Id
    mode: Mode
    payment: Payment
    type: str
    available: Amount
    balance: Amount
    pending: Amount
    cause: dict[str, Any]
    alert_id: Id | msgspec.UnsetType = msgspec.UNSET
    threshold: Amount | msgspec.UnsetType = msgspec.UNSET
    credit_limit: Amount | msgspec.UnsetType = msgspec.UNSET
    recharge: RechargeRequest | msgspec.UnsetType = msgspec.UNSET


class Event(_Shape):
    """An event, exactly as its webhooks carry it (the body is fixed when written)."""

    id: Id
    type: EventKind
    created_at: Timestamp
    data: EventData


class Webhook(_Shape):
    id: Id
    url: str
    account_id: Id | None
    events: list[EventKind]
    created_at: Timestamp
    secret: Annotated[str, msgspec.Meta(description="Only in the creating response.")] | (
        msgspec.UnsetType
    ) = msgspec.UNSET


class Delivery(_Shape):
    id: Id
    event_id: Id
    webhook_id: Id
    status: DeliveryStatus
    attempts: int
    next_attempt_at: Timestamp | None
    last_status: int | None
    last_error: str | None
    created_at: Timestamp
    delivered_at: Timestamp | None


class KindTotals(_Shape):
    topup: Amount
    charge: Amount
    refund: Amount
    adjustment: Amount
    transfer: Amount


class KindCounts(_Shape):
    topup: int
    charge: int
    refund: int
    adjustment: int
    transfer: int


class DailyDay(_Shape):
    day: Day
    balance: Annotated[Amount, msgspec.Meta(description="After the day's last entry.")]
    usage: Annotated[Amount, msgspec.Meta(description="Charges less refunds.")]
    totals: KindTotals
    entries: Annotated[int, msgspec.Meta(ge=0)]


class Daily(_Shape, rename={"first": "from", "last": "to"}):
    account_id: Id
    mode: Mode
    type: str
    first: Day
    last: Day
    opening_balance: Annotated[Amount, msgspec.Meta(description="Before the first day.")]
    data: list[DailyDay]


class UsageGroup(_Shape):
    """The usage of the entries whose metadata gives ``value`` (null: no value)."""

    value: str | None
    usage: Amount
    entries: int


class UsageBreakdown(_Shape, rename={"first": "from", "last": "to"}):
    """A ledger's usage (charges less refunds) over a range, by a metadata key."""

    account_id: Id
    mode: Mode
    type: str
    by: str
    first: Timestamp
    last: Timestamp
    data: list[UsageGroup]
    truncated: Annotated[bool, msgspec.Meta(description="More groups than the 1,000 shown.")]


class Pace(_Shape):
    """The pace of the last ``days`` days, and the day the balance runs out at it."""

    days: int
    per_day: Annotated[Amount, msgspec.Meta(description="Spent per day, on average.")]
    runs_out_on: Annotated[
        Day | None, msgspec.Meta(description="None: at this pace it does not run out.")
    ]


class Forecast(_Shape):
    """When the spendable amount runs out at the last 7 and 30 days' pace."""

    account_id: Id
    mode: Mode
    type: str
    as_of: Day
    spendable: Annotated[
        Amount | None,
        msgspec.Meta(
            description="Available, plus a postpaid account's credit limit; None without a limit."
        ),
    ]
    paces: list[Pace]


class Statement(_Shape, rename={"first": "from", "last": "to"}):
    """Opening balance + every entry's amount = closing balance (one snapshot)."""

    account_id: Id
    mode: Mode
    type: str
    first: Timestamp
    last: Timestamp
    opening_balance: Amount
    closing_balance: Amount
    totals: KindTotals
    counts: KindCounts
    data: list[Entry]
    next_cursor: str | None


class BalanceAt(_Shape):
    account_id: Id
    mode: Mode
    at: Timestamp
    payment: Payment
    type: str
    amount: Amount
    seq: Annotated[int, msgspec.Meta(ge=0)]
    entry_at: Timestamp | None


T = TypeVar("T")


class Page(_Shape, Generic[T]):
    """A page of a listing, and the cursor of the next (``has_more`` when there is one)."""

    data: list[T]
    next_cursor: str | None
    has_more: bool


class Listing(_Shape, Generic[T]):
    """A whole listing (short by its limits: keys, alert rules, webhooks, tokens)."""

    data: list[T]


#: Every shape the OpenAPI document names, by its component name.
SHAPES: Final[tuple[type[msgspec.Struct], ...]] = (
    Account,
    SubAccounts,
    ApiKey,
    RotatedKey,
    AuditRecord,
    Entry,
    PostedEntry,
    Hold,
    HoldResult,
    Transfer,
    TransferResult,
    BulkAnswer,
    Alert,
    Event,
    Webhook,
    Delivery,
    Daily,
    Forecast,
    UsageBreakdown,
    Statement,
    BalanceAt,
)


def render(shape: msgspec.Struct) -> dict[str, Any]:
    """A shape as plain JSON values (``UNSET`` fields left out; anything else a free-form
    field holds, such as an audit record's ``detail``, as text)."""
    built: dict[str, Any] = msgspec.to_builtins(shape, enc_hook=str)
    return built


def schemas() -> dict[str, Any]:
    """The JSON Schemas of :data:`SHAPES` and of every shape they use, by name."""
    _, components = msgspec.json.schema_components(
        SHAPES, ref_template="#/components/schemas/{name}"
    )
    return components
