"""The admin API's account shapes: an account, its ledgers, a shared sub-account's
spending, and a parent's listing of its sub-accounts (:mod:`birdbalance.shapes`
re-exports them)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from birdbalance.shape_types import Amount, Id, Metadata, Payment, Timestamp, _Shape


class Ledger(_Shape):
    """One ledger of an account: ``available`` is what ``GET /balance`` shows."""

    amount: Annotated[Amount, msgspec.Meta(description="The ledger's balance.")]
    pending: Annotated[Amount, msgspec.Meta(description="What pending holds reserve of it.")]
    available: Annotated[Amount, msgspec.Meta(description="amount - pending.")]
    entries: int


class Balances(_Shape):
    live: Ledger
    test: Ledger


class AccountSpendingLimit(_Shape):
    """At most ``amount`` of net usage (charges less refunds) per UTC day, month or all
    time."""

    amount: Amount
    period: Annotated[str, msgspec.Meta(pattern="^(day|month|all)$")]


class SharedLedger(_Shape):
    """One mode of a shared sub-account, now."""

    spent: Annotated[
        Amount,
        msgspec.Meta(description="Net usage in the limit's current period (all time without one)."),
    ]
    remaining: Annotated[
        Amount | None, msgspec.Meta(description="What the limit leaves; null without a limit.")
    ]
    available: Annotated[
        Amount,
        msgspec.Meta(
            description="What its keys' GET /balance shows: the smaller of the parent's"
            " available amount and `remaining`."
        ),
    ]


class SharedBalance(_Shape):
    """A shared sub-account spends the balance of ``funding`` (its parent)."""

    funding: Id
    spending_limit: AccountSpendingLimit | None
    live: SharedLedger
    test: SharedLedger


class Account(_Shape):
    id: Id
    name: str | None
    payment: Payment
    type: str
    scale: int
    credit_limit: Amount | None
    metadata: Metadata
    created_at: Timestamp
    balances: Balances
    parent: Annotated[
        Id | None, msgspec.Meta(description="The account this is a sub-account of.")
    ] = None
    balance: Annotated[
        Literal["own", "shared"],
        msgspec.Meta(
            description="`shared`: it spends its parent's balance (`balances` stay 0; see"
            " `shared`)."
        ),
    ] = "own"
    shared: SharedBalance | None = None


class SubAccountTotals(_Shape):
    """All of an account's direct sub-accounts: how many, and their live ledgers' sums."""

    accounts: int
    live: Annotated[
        Ledger, msgspec.Meta(description="Summed over them (`entries` is 0: not summed).")
    ]


class SubAccount(Account, kw_only=True):
    """A sub-account in its parent's listing, with its usage this month."""

    month_usage: Annotated[
        Amount,
        msgspec.Meta(description="Charges less refunds of its live ledger this UTC month."),
    ]


class SubAccounts(_Shape):
    """A page of an account's direct sub-accounts, by id, and the totals of all of them."""

    parent: Id
    data: list[SubAccount]
    next_cursor: str | None
    has_more: bool
    totals: SubAccountTotals
