"""Holds: reserving an amount, capturing (a charge), voiding and expiring it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Final

from birdbalance.errors import NotFound, StateConflict
from birdbalance.ids import new_id, utc_timestamp
from birdbalance.ledger import EntryKind, HoldStatus, Mode, capture_amount, next_balance, reserve
from birdbalance.records import (
    Hold,
    HoldResult,
    Idempotency,
    NewCapture,
    NewEntry,
    NewHold,
    NewVoid,
    Page,
    PostedEntry,
)

from .base import Connection, dumps
from .ledgers import LockedLedger
from .moves import LedgerMoves

#: How many due holds one sweep expires at most.
MAX_EXPIRE_BATCH: Final = 500


_HOLD_SQL: Final = (
    "SELECT id, account_id, mode, amount_minor, status, captured_minor, expires_at,"
    " reference, metadata, created_at, resolved_at FROM holds"
)


def _hold_from_row(row: Any) -> Hold:
    return Hold(
        id=row[0],
        account_id=row[1],
        mode=Mode(row[2]),
        amount_minor=row[3],
        status=HoldStatus(row[4]),
        captured_minor=row[5],
        expires_at=row[6],
        reference=row[7],
        metadata=json.loads(row[8]),
        created_at=row[9],
        resolved_at=row[10],
    )


class HoldStore(LedgerMoves):
    """Holds, from reservation to capture, void or expiry."""

    def create_hold(self, new: NewHold, idem: Idempotency) -> HoldResult:
        now = utc_timestamp()
        with self._write() as conn:
            return self._create_hold_in(conn, new, idem, now)

    def _create_hold_in(
        self, conn: Connection, new: NewHold, idem: Idempotency, now: str
    ) -> HoldResult:
        """:meth:`create_hold` inside a write transaction (a bulk request's, too)."""
        replayed = self._replayed_id(conn, idem, "hold")
        if replayed is not None:
            return self._hold_result(conn, replayed, None, replayed=True)
        self._refuse_shared(conn, new.account_id, "holds", "account")
        ledger = self._lock_ledger(conn, new.account_id, new.mode, now)
        held = reserve(ledger.state, new.amount_minor)
        hold_id = new_id("hld")
        self._execute(
            conn,
            "INSERT INTO holds (id, account_id, mode, amount_minor, status, captured_minor,"
            " expires_at, reference, metadata, created_at, resolved_at)"
            " VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, NULL)",
            (
                hold_id,
                new.account_id,
                new.mode.value,
                new.amount_minor,
                new.expires_at,
                new.reference,
                dumps(new.metadata),
                now,
            ),
        )
        self._set_held(conn, ledger, held, now, {"hold": hold_id})
        self._remember(conn, idem, "hold", hold_id)
        return self._hold_result(conn, hold_id, None, replayed=False, scale=ledger.scale)

    def _hold_result(
        self,
        conn: Connection,
        hold_id: str,
        capture: PostedEntry | None,
        *,
        replayed: bool,
        scale: int | None = None,
    ) -> HoldResult:
        """A hold as it is now, with the scale its answer renders in."""
        hold = self._hold(conn, hold_id)
        if scale is None:
            scale = (
                capture.scale if capture is not None else self._account(conn, hold.account_id).scale
            )
        return HoldResult(hold, capture, replayed, scale)

    def _pending_hold(self, conn: Connection, hold_id: str, now: str) -> tuple[LockedLedger, Hold]:
        """Lock a hold's ledger, then read the hold, which must still be pending."""
        hold = self._hold(conn, hold_id)
        ledger = self._lock_ledger(conn, hold.account_id, hold.mode, now)
        # Re-read under the ledger lock: every change to a hold takes that lock first.
        hold = self._hold(conn, hold_id)
        if hold.status is not HoldStatus.PENDING:
            raise StateConflict(f"hold {hold_id} is {hold.status}, not pending", "hold")
        return ledger, hold

    def capture_hold(
        self,
        hold_id: str,
        amount_minor: int | None,
        reference: str | None,
        metadata: dict[str, Any],
        idem: Idempotency,
    ) -> HoldResult:
        now = utc_timestamp()
        capture = NewCapture(hold_id, amount_minor, reference, metadata)
        with self._write() as conn:
            return self._capture_in(conn, capture, idem, now)

    def _capture_in(
        self, conn: Connection, capture: NewCapture, idem: Idempotency, now: str
    ) -> HoldResult:
        """:meth:`capture_hold` inside a write transaction (a bulk request's, too)."""
        hold_id = capture.hold_id
        replayed = self._replayed_id(conn, idem, "entry")
        if replayed is not None:
            entry = self._entry(conn, replayed)
            assert entry.hold_id is not None
            posted = self._posted(conn, entry, replayed=True)
            return self._hold_result(conn, entry.hold_id, posted, replayed=True)
        ledger, hold = self._pending_hold(conn, hold_id, now)
        captured = capture_amount(hold.amount_minor, capture.amount_minor)
        released = replace(ledger, held_minor=ledger.held_minor - hold.amount_minor)
        after = next_balance(released.state, EntryKind.CHARGE, captured)
        self._execute(
            conn,
            "UPDATE holds SET status = 'captured', captured_minor = ?, resolved_at = ?"
            " WHERE id = ? AND status = 'pending'",
            (captured, now, hold_id),
        )
        new = NewEntry(
            hold.account_id,
            hold.mode,
            EntryKind.CHARGE,
            captured,
            None,
            capture.reference if capture.reference is not None else hold.reference,
            capture.metadata or hold.metadata,
        )
        entry = self._append(
            conn, ledger, new, after, now, held_after_minor=released.held_minor, hold_id=hold_id
        )
        self._remember(conn, idem, "entry", entry.id)
        posted = PostedEntry(entry, ledger.payment, ledger.asset, ledger.scale, False)
        return self._hold_result(conn, hold_id, posted, replayed=False)

    def void_hold(self, hold_id: str, idem: Idempotency) -> HoldResult:
        now = utc_timestamp()
        with self._write() as conn:
            return self._void_in(conn, NewVoid(hold_id), idem, now)

    def _void_in(self, conn: Connection, void: NewVoid, idem: Idempotency, now: str) -> HoldResult:
        """:meth:`void_hold` inside a write transaction (a bulk request's, too)."""
        replayed = self._replayed_id(conn, idem, "hold")
        if replayed is not None:
            return self._hold_result(conn, replayed, None, replayed=True)
        ledger, hold = self._pending_hold(conn, void.hold_id, now)
        self._execute(
            conn,
            "UPDATE holds SET status = 'voided', resolved_at = ?"
            " WHERE id = ? AND status = 'pending'",
            (now, void.hold_id),
        )
        self._set_held(
            conn, ledger, ledger.held_minor - hold.amount_minor, now, {"hold": void.hold_id}
        )
        self._remember(conn, idem, "hold", void.hold_id)
        return self._hold_result(conn, void.hold_id, None, replayed=False, scale=ledger.scale)

    def expire_holds(self, limit: int = MAX_EXPIRE_BATCH) -> int:
        """Expire the due holds of up to ``limit`` ledgers, one short transaction each."""
        assert 1 <= limit <= MAX_EXPIRE_BATCH
        now = utc_timestamp()
        with self._read() as conn:
            due = self._execute(
                conn,
                "SELECT DISTINCT account_id, mode FROM (SELECT account_id, mode FROM holds"
                " WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at LIMIT ?) d",
                (now, limit),
            ).fetchall()
        expired = 0
        for account_id, mode in due:
            with self._write() as conn:
                ledger = self._read_ledger(conn, account_id, Mode(mode))
                expired += self._expire_due(conn, ledger, now)[1]
        return expired

    def get_hold(self, hold_id: str) -> Hold:
        with self._read() as conn:
            return self._hold(conn, hold_id)

    def _hold(self, conn: Connection, hold_id: str) -> Hold:
        row = self._execute(conn, _HOLD_SQL + " WHERE id = ?", (hold_id,)).fetchone()
        if row is None:
            raise NotFound(f"no hold {hold_id}", "hold")
        return _hold_from_row(row)

    def list_holds(
        self,
        account_id: str,
        mode: Mode,
        status: HoldStatus | None,
        cursor: str | None,
        limit: int,
    ) -> Page[Hold]:
        sql = _HOLD_SQL + " WHERE account_id = ? AND mode = ? AND id < ?"
        args: list[Any] = [account_id, mode.value, cursor or "~"]
        if status is not None:
            sql += " AND status = ?"
            args.append(status.value)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._read() as conn:
            rows = self._execute(conn, sql, [*args, limit + 1]).fetchall()
        items = [_hold_from_row(r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)
