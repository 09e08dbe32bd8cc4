"""The audit log: appended in batches, read newest first."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from birdbalance.errors import ServiceError
from birdbalance.ids import utc_timestamp
from birdbalance.records import (
    AuditRecord,
    Idempotency,
    NewEntry,
    Page,
    PostedEntry,
    entry_outcome,
)

from .base import Connection
from .moves import EntryBatch, LedgerMoves

#: Largest page of the audit log.
MAX_AUDIT_PAGE: Final = 500


_AUDIT_SQL: Final = "SELECT seq, at, actor, action, target, address, status, detail FROM audit_log"
_INSERT_AUDIT_SQL: Final = (
    "INSERT INTO audit_log (at, actor, action, target, address, status, detail)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def entry_audit(record: AuditRecord, result: PostedEntry | ServiceError) -> AuditRecord:
    """An entry request's audit record, completed with the answer its entry got: the
    status, and ``outcome`` (``posted``, ``replayed``, ``refused`` or ``failed``)."""
    status, outcome = entry_outcome(result)
    return replace(record, status=status, detail={**record.detail, "outcome": outcome})


def _audit_row(record: AuditRecord, now: str) -> tuple[Any, ...]:
    return (
        record.at or now,
        record.actor,
        record.action,
        record.target,
        record.address,
        record.status,
        json.dumps(record.detail, separators=(",", ":"), sort_keys=True),
    )


def _audit_from_row(row: Any) -> AuditRecord:
    return AuditRecord(
        actor=row[2],
        action=row[3],
        target=row[4],
        address=row[5],
        status=int(row[6]),
        detail=json.loads(row[7]),
        seq=int(row[0]),
        at=row[1],
    )


class AuditStore(LedgerMoves):
    """The append-only audit log."""

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Append ``records``; each keeps its ``at`` (when it happened) when it has one."""
        now = utc_timestamp()
        with self._write() as conn:
            self._execute_many(conn, _INSERT_AUDIT_SQL, [_audit_row(r, now) for r in records])

    def append_entries(
        self,
        batch: Sequence[tuple[NewEntry, Idempotency]],
        audits: Sequence[AuditRecord | None] | None = None,
    ) -> list[PostedEntry | ServiceError]:
        """:meth:`LedgerMoves.append_entries`, and with ``audits`` (one per entry, or
        None) each entry's audit record in the same transaction, completed with its
        answer by :func:`entry_audit`: an entry and its record commit together or not at
        all, and the log costs no commit of its own."""
        if audits is None:
            return super().append_entries(batch)
        assert len(audits) == len(batch)
        now = utc_timestamp()
        with self._batch_write() as conn:
            results = EntryBatch(self, conn, now).post(batch)
            self._insert_audit(
                conn,
                [
                    entry_audit(record, result)
                    for record, result in zip(audits, results, strict=True)
                    if record is not None
                ],
                now,
            )
            return results

    def _insert_audit(self, conn: Connection, records: Sequence[AuditRecord], now: str) -> None:
        if records:
            self._execute_many(conn, _INSERT_AUDIT_SQL, [_audit_row(r, now) for r in records])

    def list_audit(
        self, cursor: int | None, limit: int, actor: str | None, action: str | None
    ) -> Page[AuditRecord]:
        assert 1 <= limit <= MAX_AUDIT_PAGE
        where: list[str] = ["seq < ?"]
        args: list[object] = [cursor if cursor is not None else 2**62]
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        if action is not None:
            where.append("action = ?")
            args.append(action)
        with self._read() as conn:
            rows = self._execute(
                conn,
                _AUDIT_SQL + " WHERE " + " AND ".join(where) + " ORDER BY seq DESC LIMIT ?",
                (*args, limit + 1),
            ).fetchall()
        records = [_audit_from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(records, str(records[-1].seq) if more else None)
