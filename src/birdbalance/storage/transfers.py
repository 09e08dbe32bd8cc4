"""Transfers: an amount moved from one account's ledger to another's, both legs or
neither.

A transfer locks both ledgers (in the one global order every write uses, so transfers
and batches cannot deadlock), checks the source's floor and the destination's bounds
with the ledger rules, appends a ``transfer`` entry to each (the source's negative, the
destination's positive) and records the pair, all in one transaction. It is never
edited; a transfer back reverses it.
"""

from __future__ import annotations

import json
from typing import Any, Final

from birdbalance.errors import InvalidParameter, NotFound
from birdbalance.ids import new_id, utc_timestamp
from birdbalance.ledger import EntryKind, Mode, next_balance
from birdbalance.records import (
    Idempotency,
    NewEntry,
    NewTransfer,
    Page,
    PostedEntry,
    Transfer,
    TransferResult,
)

from .base import Connection, dumps
from .moves import LedgerMoves

#: A transfer, and the scale of its asset (both accounts share it) to render it in.
_TRANSFER_SQL: Final = (
    "SELECT t.id, t.from_account, t.to_account, t.mode, t.amount_minor, t.from_entry,"
    " t.to_entry, t.reference, t.metadata, t.created_at, a.scale FROM transfers t"
    " JOIN accounts a ON a.id = t.from_account"
)


def _transfer_from_row(row: Any) -> Transfer:
    return Transfer(
        id=row[0],
        from_account=row[1],
        to_account=row[2],
        mode=Mode(row[3]),
        amount_minor=int(row[4]),
        from_entry=row[5],
        to_entry=row[6],
        reference=row[7],
        metadata=json.loads(row[8]),
        created_at=row[9],
        scale=int(row[10]),
    )


class TransferStore(LedgerMoves):
    """Transfers between two ledgers of one asset and mode."""

    def transfer(self, new: NewTransfer, idem: Idempotency) -> TransferResult:
        """Move the amount, or raise: 404 for an unknown account, 422 for two assets, the
        same account, or a source that cannot cover it (its floor: 0, or its credit
        limit), 409 for a key reused with another body."""
        if new.from_account == new.to_account:
            raise InvalidParameter("a transfer needs two different accounts", "to")
        assert new.amount_minor > 0
        now = utc_timestamp()
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "transfer")
            if replayed is not None:
                return self._transfer_result(conn, replayed, replayed=True)
            self._refuse_shared(conn, new.from_account, "transfers", "from")
            self._refuse_shared(conn, new.to_account, "transfers", "to")
            source_key, target_key = (new.from_account, new.mode), (new.to_account, new.mode)
            locked = self._read_ledgers(conn, [source_key, target_key])
            for key, parameter in ((source_key, "from"), (target_key, "to")):
                if key not in locked:
                    raise NotFound(f"no account {key[0]}", parameter)
            source, target = locked[source_key], locked[target_key]
            if (source.asset, source.scale) != (target.asset, target.scale):
                raise InvalidParameter(
                    f"a transfer moves one asset: {new.from_account} holds {source.asset},"
                    f" {new.to_account} holds {target.asset}",
                    "to",
                )
            if source.held_minor:
                source, _ = self._expire_due(conn, source, now)
            out_after = next_balance(source.state, EntryKind.TRANSFER, -new.amount_minor)
            in_after = next_balance(target.state, EntryKind.TRANSFER, new.amount_minor)
            legs = []
            for ledger, signed, after in (
                (source, -new.amount_minor, out_after),
                (target, new.amount_minor, in_after),
            ):
                leg = NewEntry(
                    ledger.account_id,
                    new.mode,
                    EntryKind.TRANSFER,
                    signed,
                    None,
                    new.reference,
                    new.metadata,
                )
                legs.append(
                    self._append(conn, ledger, leg, after, now, held_after_minor=ledger.held_minor)
                )
            transfer = Transfer(
                id=new_id("trf"),
                from_account=new.from_account,
                to_account=new.to_account,
                mode=new.mode,
                amount_minor=new.amount_minor,
                from_entry=legs[0].id,
                to_entry=legs[1].id,
                reference=new.reference,
                metadata=new.metadata,
                created_at=legs[0].created_at,
                scale=source.scale,
            )
            self._execute(
                conn,
                "INSERT INTO transfers (id, from_account, to_account, mode, amount_minor,"
                " from_entry, to_entry, reference, metadata, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    transfer.id,
                    transfer.from_account,
                    transfer.to_account,
                    transfer.mode.value,
                    transfer.amount_minor,
                    transfer.from_entry,
                    transfer.to_entry,
                    transfer.reference,
                    dumps(transfer.metadata),
                    transfer.created_at,
                ),
            )
            self._remember(conn, idem, "transfer", transfer.id)
        # The answer from what was written, not read back inside the write lock.
        posted = tuple(
            PostedEntry(leg, ledger.payment, ledger.asset, ledger.scale, False)
            for leg, ledger in zip(legs, (source, target), strict=True)
        )
        return TransferResult(transfer, (posted[0], posted[1]), False)

    def _transfer_result(
        self, conn: Connection, transfer_id: str, *, replayed: bool
    ) -> TransferResult:
        transfer = self._transfer(conn, transfer_id)
        out_leg = self._posted(conn, self._entry(conn, transfer.from_entry), replayed=replayed)
        in_leg = self._posted(conn, self._entry(conn, transfer.to_entry), replayed=replayed)
        return TransferResult(transfer, (out_leg, in_leg), replayed)

    def _transfer(self, conn: Connection, transfer_id: str) -> Transfer:
        row = self._execute(conn, _TRANSFER_SQL + " WHERE t.id = ?", (transfer_id,)).fetchone()
        if row is None:
            raise NotFound(f"no transfer {transfer_id}", "transfer")
        return _transfer_from_row(row)

    def get_transfer(self, transfer_id: str) -> TransferResult:
        """A transfer and its two legs; raises ``NotFound``."""
        with self._read() as conn:
            return self._transfer_result(conn, transfer_id, replayed=False)

    def list_transfers(
        self, account_id: str | None, cursor: str | None, limit: int
    ) -> Page[Transfer]:
        """Transfers newest first: all of them, or those from or to ``account_id``."""
        before = cursor or "~"
        args: list[Any]
        if account_id is None:
            sql = _TRANSFER_SQL + " WHERE t.id < ? ORDER BY t.id DESC LIMIT ?"
            args = [before]
        else:
            # Each side on its own index, newest first, then merged: never a scan.
            sql = (
                f"SELECT * FROM ({_TRANSFER_SQL} WHERE t.id < ? AND t.from_account = ?"  # noqa: S608 -- constants only
                f" UNION ALL {_TRANSFER_SQL} WHERE t.id < ? AND t.to_account = ?) u"
                " ORDER BY 1 DESC LIMIT ?"
            )
            args = [before, account_id, before, account_id]
        with self._read() as conn:
            if account_id is not None:
                self._account(conn, account_id)  # 404 for an unknown account
            rows = self._execute(conn, sql, [*args, limit + 1]).fetchall()
        items = [_transfer_from_row(r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)
