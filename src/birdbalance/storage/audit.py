"""The audit log: appended in batches, read newest first."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from birdbalance.ids import utc_timestamp
from birdbalance.records import AuditRecord, Page

from .moves import LedgerMoves

#: Largest page of the audit log.
MAX_AUDIT_PAGE: Final = 500


_AUDIT_SQL: Final = "SELECT seq, at, actor, action, target, address, status, detail FROM audit_log"


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
            self._execute_many(
                conn,
                "INSERT INTO audit_log (at, actor, action, target, address, status, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.at or now,
                        r.actor,
                        r.action,
                        r.target,
                        r.address,
                        r.status,
                        json.dumps(r.detail, separators=(",", ":"), sort_keys=True),
                    )
                    for r in records
                ],
            )

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
