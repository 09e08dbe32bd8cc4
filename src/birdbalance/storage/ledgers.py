"""A ledger as a write sees it (its row, read under the write lock), the move a write
makes of it, and the rows those are written as. No I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from birdbalance.ledger import DayTurnover, EntryKind, LedgerState, Mode, Payment, turnover_after
from birdbalance.records import Entry

from .base import LedgerKey, dumps


@dataclass(frozen=True, slots=True)
class LockedLedger:
    """A ledger's row, read under the write lock."""

    account_id: str
    mode: Mode
    payment: Payment
    asset: str
    scale: int
    credit_limit_minor: int | None
    balance_minor: int
    seq: int
    held_minor: int
    last_entry_at: str | None
    turnover_day: str | None
    turnover_in_minor: int
    turnover_out_minor: int

    @property
    def turnover(self) -> DayTurnover:
        return DayTurnover(self.turnover_day, self.turnover_in_minor, self.turnover_out_minor)

    @property
    def state(self) -> LedgerState:
        return LedgerState(
            self.payment, self.balance_minor, self.credit_limit_minor, self.held_minor
        )


@dataclass(frozen=True, slots=True)
class LedgerMove:
    """A ledger's move, as the events it raises describe it."""

    ledger: LockedLedger
    balance_minor: int
    held_minor: int
    now: str
    cause: dict[str, Any]
    #: (webhook id, its comma-separated event filter) of the ledger's account.
    subscribers: Sequence[tuple[str, str]]


def ledger_after(ledger: LockedLedger, entry: Entry, held_minor: int) -> LockedLedger:
    """The ledger once ``entry`` is appended to it (refused past the day's turnover)."""
    turnover = turnover_after(ledger.turnover, entry.created_at[:10], entry.amount_minor)
    return replace(
        ledger,
        balance_minor=entry.balance_after_minor,
        seq=entry.seq,
        held_minor=held_minor,
        last_entry_at=entry.created_at,
        turnover_day=turnover.day,
        turnover_in_minor=turnover.in_minor,
        turnover_out_minor=turnover.out_minor,
    )


def entry_row(entry: Entry) -> tuple[Any, ...]:
    return (
        entry.id,
        entry.account_id,
        entry.mode.value,
        entry.seq,
        entry.kind.value,
        entry.amount_minor,
        entry.balance_after_minor,
        entry.refund_of,
        entry.reference,
        dumps(entry.metadata),
        entry.created_at,
        entry.hold_id,
        entry.attributed_to,
    )


def values_rows(insert_sql: str, count: int) -> str:
    """``INSERT ... VALUES (?, ...)`` with ``count`` rows of values."""
    head, sep, values = insert_sql.rpartition(" VALUES ")
    assert sep and values.startswith("(") and 1 <= count <= MAX_WRITE_BATCH
    return head + sep + ", ".join([values] * count)


def move_row(start: LockedLedger, end: LockedLedger) -> tuple[Any, ...]:
    """:data:`MOVE_LEDGER_SQL`'s arguments: from ``start`` (as locked) to ``end``."""
    return (
        end.balance_minor,
        end.seq,
        end.held_minor,
        end.last_entry_at,
        end.turnover_day,
        end.turnover_in_minor,
        end.turnover_out_minor,
        start.account_id,
        start.mode.value,
        start.seq,
    )


def ledgers_from(rows: Iterable[Any]) -> dict[LedgerKey, LockedLedger]:
    ledgers = (LockedLedger(r[0], Mode(r[1]), Payment(r[2]), *r[3:]) for r in rows)
    return {(ledger.account_id, ledger.mode): ledger for ledger in ledgers}


INSERT_ENTRY_SQL: Final = (
    "INSERT INTO entries (id, account_id, mode, seq, kind, amount_minor,"
    " balance_after_minor, refund_of, reference, metadata, created_at, hold_id,"
    " attributed_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


MOVE_LEDGER_SQL: Final = (
    "UPDATE balances SET balance_minor = ?, seq = ?, held_minor = ?, last_entry_at = ?,"
    " turnover_day = ?, turnover_in_minor = ?, turnover_out_minor = ?"
    " WHERE account_id = ? AND mode = ? AND seq = ?"
)


ENTRY_SQL: Final = (
    "SELECT id, account_id, mode, seq, kind, amount_minor, balance_after_minor, refund_of,"
    " reference, metadata, created_at, hold_id, attributed_to FROM entries"
)


def entry_from_row(row: Any) -> Entry:
    return Entry(
        id=row[0],
        account_id=row[1],
        mode=Mode(row[2]),
        seq=row[3],
        kind=EntryKind(row[4]),
        amount_minor=row[5],
        balance_after_minor=row[6],
        refund_of=row[7],
        reference=row[8],
        metadata=json.loads(row[9]),
        created_at=row[10],
        hold_id=row[11],
        attributed_to=row[12],
    )


#: Most entries one group commit (:meth:`SQLStore.append_entries`) writes in a transaction.
MAX_WRITE_BATCH: Final = 64


def ledger_pairs(count: int) -> str:
    """``(?, ?), (?, ?), ...``: ``count`` rows of a ``VALUES`` list of (account, mode)."""
    assert 1 <= count <= MAX_WRITE_BATCH
    return ", ".join(["(?, ?)"] * count)
