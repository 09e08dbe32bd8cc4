"""``birdbalance verify``: every stored balance recomputed from its entries, and the
links between entries, holds, events and deliveries checked."""

from __future__ import annotations

from birdbalance.ledger import EntryFact, EntryKind, Payment, audit_ledger

from .base import Connection
from .moves import LedgerMoves


class VerifyStore(LedgerMoves):
    """Proves every stored balance equals the sum of its entries."""

    def verify(self) -> list[str]:
        problems: list[str] = []
        with self._snapshot() as conn:
            ledgers = self._execute(
                conn,
                "SELECT b.account_id, b.mode, b.balance_minor, b.seq, a.payment, b.held_minor,"
                " (SELECT COALESCE(SUM(h.amount_minor), 0) FROM holds h"
                "  WHERE h.account_id = b.account_id AND h.mode = b.mode"
                "  AND h.status = 'pending')"
                " FROM balances b JOIN accounts a ON a.id = b.account_id"
                " ORDER BY b.account_id, b.mode",
            ).fetchall()
            for account_id, mode, balance, seq, payment, held, pending in ledgers:
                facts = (
                    EntryFact(r[0], EntryKind(r[1]), r[2], r[3])
                    for r in self._execute(
                        conn,
                        "SELECT seq, kind, amount_minor, balance_after_minor FROM entries"
                        " WHERE account_id = ? AND mode = ? ORDER BY seq",
                        (account_id, mode),
                    ).fetchall()
                )
                found = audit_ledger(facts, balance, seq, Payment(payment))
                if held != pending:
                    found.append(f"holds reserve {held} but pending holds sum to {pending}")
                problems += [f"{account_id} {mode}: {p}" for p in found]
            problems += self._verify_links(conn)
            problems += self._verify_daily_totals(conn)
        return problems

    def _verify_daily_totals(self, conn: Connection) -> list[str]:
        """The per-day totals are exactly what the entries add up to, day by day."""
        recomputed = (
            "SELECT t.account_id, t.mode, t.day, t.kind, t.amount_minor, t.entries,"  # noqa: S608 -- constants only
            " t.last_seq, e.balance_after_minor FROM (SELECT account_id, mode,"
            f" {self._ENTRY_DAY_SQL} AS day, kind, SUM(amount_minor) AS amount_minor,"
            " COUNT(*) AS entries, MAX(seq) AS last_seq FROM entries"
            " GROUP BY account_id, mode, day, kind) t JOIN entries e"
            " ON e.account_id = t.account_id AND e.mode = t.mode AND e.seq = t.last_seq"
        )
        stored = (
            "SELECT account_id, mode, day, kind, amount_minor, entries, last_seq,"
            " balance_after_minor FROM daily_totals"
        )
        problems = []
        for first, second, what in (
            (recomputed, stored, "days of entries are missing or wrong in daily_totals"),
            (stored, recomputed, "rows of daily_totals match no day of entries"),
        ):
            count = self._execute(
                conn,
                f"SELECT COUNT(*) FROM ({first} EXCEPT {second}) x",  # noqa: S608 -- constants only
            ).fetchone()[0]
            if count:
                problems.append(f"{count} {what}")
        return problems

    def _verify_links(self, conn: Connection) -> list[str]:
        """Cross-row checks: orphans, refunds, captures, entry times."""
        problems: list[str] = []
        orphans = self._execute(
            conn,
            "SELECT COUNT(*) FROM entries e LEFT JOIN balances b"
            " ON b.account_id = e.account_id AND b.mode = e.mode WHERE b.account_id IS NULL",
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} entries belong to no ledger")
        for refund_of, kind, charged, refunded, strangers in self._execute(
            conn,
            "SELECT r.refund_of, MIN(c.kind), -MIN(c.amount_minor), SUM(r.amount_minor),"
            " SUM(CASE WHEN r.account_id = c.account_id AND r.mode = c.mode THEN 0 ELSE 1 END)"
            " FROM entries r JOIN entries c ON c.id = r.refund_of"
            " WHERE r.refund_of IS NOT NULL GROUP BY r.refund_of",
        ).fetchall():
            if kind != EntryKind.CHARGE.value or strangers:
                problems.append(f"refunds of {refund_of} do not refund a charge of their ledger")
            elif refunded > charged:
                problems.append(f"refunds of {refund_of} ({refunded}) exceed it ({charged})")
        for hold_id, status, captured, charged in self._execute(
            conn,
            "SELECT h.id, h.status, h.captured_minor, -e.amount_minor FROM holds h"
            " LEFT JOIN entries e ON e.hold_id = h.id"
            " WHERE (h.status = 'captured') <> (e.id IS NOT NULL)"
            " OR (e.id IS NOT NULL AND (e.kind <> 'charge' OR e.account_id <> h.account_id"
            " OR e.mode <> h.mode OR -e.amount_minor <> h.captured_minor))",
        ).fetchall():
            problems.append(
                f"hold {hold_id} ({status}, captured {captured}) does not match its charge"
                f" ({charged})"
            )
        backwards = self._execute(
            conn,
            "SELECT COUNT(*) FROM (SELECT created_at, LAG(created_at) OVER"
            " (PARTITION BY account_id, mode ORDER BY seq) AS previous FROM entries) t"
            " WHERE previous > created_at",
        ).fetchone()[0]
        if backwards:
            problems.append(f"{backwards} entries are older than the entry before them")
        return problems
