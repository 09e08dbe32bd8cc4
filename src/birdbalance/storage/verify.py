"""``birdbalance verify``: every stored balance recomputed from its entries, and the
links between entries, holds and per-day totals checked, streamed in bounded memory.

It walks the accounts in batches of :data:`VERIFY_BATCH_ACCOUNTS` (by id). Each batch
reads its ledgers, their holds, per-day totals, refunds and captures in one short
snapshot, then walks the batch's entries in pages of :data:`VERIFY_PAGE_ENTRIES`, each
page its own short read. No snapshot is held longer than one batch, so SQLite's
checkpoints and PostgreSQL's statement timeout never meet it, and memory is bounded by a
batch and a page, whatever the database's size.

Reading entries after the snapshot is sound because entries are append-only: the
entries up to the ledger's stored ``seq`` are exactly those the snapshot's balance was
built from. Entries written since (a higher ``seq``) are left for the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from birdbalance.ledger import EntryKind, LedgerAudit, Payment
from birdbalance.spending import spend

from .base import Connection
from .moves import LedgerMoves

#: Accounts per batch: one short snapshot reads their ledgers, holds and totals.
VERIFY_BATCH_ACCOUNTS: Final = 1000
#: Entries per query of the walk.
VERIFY_PAGE_ENTRIES: Final = 20_000
#: Problems listed in full; beyond this many, they are counted.
MAX_PROBLEMS: Final = 1000

#: Called after each batch with (accounts verified, accounts in all).
Progress = Callable[[int, int], None]


class VerifyStore(LedgerMoves):
    """Proves every stored balance equals the sum of its entries."""

    def verify(self, progress: Progress | None = None) -> list[str]:
        problems: list[str] = []
        with self._read() as conn:
            total = int(self._execute(conn, "SELECT COUNT(*) FROM accounts").fetchone()[0])
        done = 0
        low = ""
        more = False
        while True:
            with self._read() as conn:
                ids = self._execute(
                    conn,
                    "SELECT id FROM accounts WHERE id > ? ORDER BY id LIMIT ?",
                    (low, VERIFY_BATCH_ACCOUNTS),
                ).fetchall()
            # The last batch is open above, so that no entry escapes the walk.
            high = ids[-1][0] if len(ids) == VERIFY_BATCH_ACCOUNTS else None
            found = self._verify_batch(low, high)
            more = more or len(problems) + len(found) > MAX_PROBLEMS
            problems += found[: MAX_PROBLEMS - len(problems)]
            done += len(ids)
            if progress is not None:
                progress(done, max(total, done))
            if high is None:
                if more:
                    problems.append(f"… and more problems (the first {MAX_PROBLEMS} are shown)")
                return problems
            low = high

    # ------------------------------------------------------------------ one batch

    def _range(self, column: str, low: str, high: str | None) -> tuple[str, tuple[str, ...]]:
        if high is None:
            return f"{column} > ?", (low,)
        return f"{column} > ? AND {column} <= ?", (low, high)

    def _verify_batch(self, low: str, high: str | None) -> list[str]:
        where, bounds = self._range("b.account_id", low, high)
        with self._snapshot() as conn:
            ledgers = self._execute(
                conn,
                "SELECT b.account_id, b.mode, b.balance_minor, b.seq, a.payment, b.held_minor,"  # noqa: S608 -- constants only
                " (SELECT COALESCE(SUM(h.amount_minor), 0) FROM holds h"
                "  WHERE h.account_id = b.account_id AND h.mode = b.mode"
                "  AND h.status = 'pending')"
                f" FROM balances b JOIN accounts a ON a.id = b.account_id WHERE {where}"
                " ORDER BY b.account_id, b.mode",
                bounds,
            ).fetchall()
            problems = self._verify_links(conn, low, high)
            problems += self._verify_daily_totals(conn, low, high)
            spending = self._spending_snapshot(conn, low, high)
        problems += self._walk_entries(ledgers, low, high)
        if spending[0] or spending[1] or spending[2]:
            problems += self._verify_spending(*spending, low, high)
        return problems

    # ------------------------------------------------------------------ shared balances

    def _spending_snapshot(
        self, conn: Connection, low: str, high: str | None
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str, str], int], list[str]]:
        """The batch's shared sub-accounts as of the snapshot: the seq their parent's
        ledger had reached, per (sub-account, mode), and their stored counters; and what
        is wrong with where their entries are."""
        where, bounds = self._range("a.id", low, high)
        reached = {
            (str(r[0]), str(r[1])): int(r[2])
            for r in self._execute(
                conn,
                "SELECT a.id, b.mode, b.seq FROM accounts a JOIN balances b"  # noqa: S608 -- constants only
                f" ON b.account_id = a.funding_id WHERE a.funding_id IS NOT NULL AND {where}",
                bounds,
            ).fetchall()
        }
        problems: list[str] = []
        where, bounds = self._range("s.account_id", low, high)
        stored = {
            (str(r[0]), str(r[1]), str(r[2])): int(r[3])
            for r in self._execute(
                conn,
                "SELECT s.account_id, s.mode, s.period, s.spent_minor FROM spending s"  # noqa: S608 -- constants only
                f" WHERE {where}",
                bounds,
            ).fetchall()
        }
        where, bounds = self._range("e.attributed_to", low, high)
        misplaced = self._execute(
            conn,
            "SELECT COUNT(*) FROM entries e LEFT JOIN accounts a ON a.id = e.attributed_to"  # noqa: S608 -- constants only
            f" WHERE {where} AND (a.funding_id IS NULL OR e.account_id <> a.funding_id"
            " OR e.kind NOT IN ('charge', 'refund'))",
            bounds,
        ).fetchone()[0]
        if misplaced:
            problems.append(
                f"{misplaced} attributed entries are not charges or refunds on the ledger"
                " their sub-account spends"
            )
        if stored and not reached:
            problems.append(f"{len(stored)} spending counters belong to no shared sub-account")
        return reached, stored, problems

    def _verify_spending(
        self,
        reached: dict[tuple[str, str], int],
        stored: dict[tuple[str, str, str], int],
        misplaced: list[str],
        low: str,
        high: str | None,
    ) -> list[str]:
        """Each shared sub-account's counters are its entries replayed (up to the seq its
        parent's ledger had in the snapshot; later ones are the next run's)."""
        problems = list(misplaced)
        where, bounds = self._range("attributed_to", low, high)
        sql = (
            "SELECT attributed_to, mode, seq, kind, amount_minor, created_at FROM entries"  # noqa: S608 -- constants only
            f" WHERE {where} AND (attributed_to, mode, seq) > (?, ?, ?)"
            " ORDER BY attributed_to, mode, seq LIMIT ?"
        )
        replayed: dict[tuple[str, str, str], int] = {}
        counters: dict[str, int] = {}
        current: tuple[str, str] | None = None

        def settle() -> None:
            if current is not None:
                for period, spent in counters.items():
                    replayed[(*current, period)] = spent

        after: tuple[Any, ...] = (low, "", 0)
        while True:
            with self._read() as conn:
                rows = self._execute(conn, sql, (*bounds, *after, VERIFY_PAGE_ENTRIES)).fetchall()
            for sub, mode, seq, kind, amount, created_at in rows:
                if (sub, mode) != current:
                    settle()
                    current, counters = (sub, mode), {}
                if seq <= reached.get((sub, mode), 0):
                    counters = spend(counters, EntryKind(kind), amount, str(created_at), None)
            if len(rows) < VERIFY_PAGE_ENTRIES:
                break
            after = rows[-1][:3]
        settle()
        wrong = {
            key
            for key in stored.keys() | replayed.keys()
            if stored.get(key, 0) != replayed.get(key, 0)
        }
        for sub, mode, period in sorted(wrong)[:10]:
            problems.append(
                f"{sub} {mode}: spending {period} is {stored.get((sub, mode, period), 0)},"
                f" its entries make {replayed.get((sub, mode, period), 0)}"
            )
        if len(wrong) > 10:
            problems.append(f"… and {len(wrong) - 10} more wrong spending counters")
        return problems

    def _walk_entries(self, ledgers: list[Any], low: str, high: str | None) -> list[str]:
        """Each ledger's entries against its balance; entries older than the entry
        before them; entries of no ledger."""
        problems: list[str] = []
        known = {(row[0], row[1]): row for row in ledgers}
        current: tuple[str, str] | None = None
        audit: LedgerAudit | None = None
        stored_seq = 0
        previous_at = ""
        backwards = 0
        strangers: set[tuple[str, str]] = set()

        def finish(key: tuple[str, str], checked: LedgerAudit) -> None:
            ledger = known.pop(key)
            found = checked.finish(ledger[2], ledger[3])
            held, pending = ledger[5], ledger[6]
            if held != pending:
                found.append(f"holds reserve {held} but pending holds sum to {pending}")
            problems.extend(f"{key[0]} {key[1]}: {p}" for p in found)

        for account_id, mode, seq, amount, after, created_at in self._entries(low, high):
            if (account_id, mode) != current:
                if current is not None and audit is not None:
                    finish(current, audit)
                current, audit = (account_id, mode), None
                ledger = known.get(current)
                if ledger is None:
                    strangers.add(current)
                    continue
                audit, stored_seq, previous_at = LedgerAudit(Payment(ledger[4])), ledger[3], ""
            if audit is None or seq > stored_seq:
                continue  # of no ledger in the snapshot, or written since it
            audit.add(seq, amount, after)
            if created_at < previous_at:
                backwards += 1
            previous_at = created_at
        if current is not None and audit is not None:
            finish(current, audit)
        for key, ledger in list(known.items()):
            # A ledger without entries (every test ledger that was never written).
            finish(key, LedgerAudit(Payment(ledger[4])))
        if strangers:
            orphans = self._orphans(strangers)
            if orphans:
                problems.append(f"{orphans} entries belong to no ledger")
        if backwards:
            problems.append(f"{backwards} entries are older than the entry before them")
        return problems

    def _entries(self, low: str, high: str | None) -> Iterator[tuple[Any, ...]]:
        """The batch's entries in (account, mode, seq) order, a page per short read."""
        where, bounds = self._range("account_id", low, high)
        sql = (
            "SELECT account_id, mode, seq, amount_minor, balance_after_minor, created_at"  # noqa: S608 -- constants only
            f" FROM entries WHERE {where} AND (account_id, mode, seq) > (?, ?, ?)"
            " ORDER BY account_id, mode, seq LIMIT ?"
        )
        after: tuple[Any, ...] = (low, "", 0)
        while True:
            with self._read() as conn:
                rows = self._execute(conn, sql, (*bounds, *after, VERIFY_PAGE_ENTRIES)).fetchall()
            yield from rows
            if len(rows) < VERIFY_PAGE_ENTRIES:
                return
            after = rows[-1][:3]

    def _orphans(self, ledgers: set[tuple[str, str]]) -> int:
        """Entries of these ledgers, if the ledgers (still) do not exist: a ledger made
        after the batch's snapshot is not an orphan."""
        count = 0
        with self._read() as conn:
            for account_id, mode in ledgers:
                exists = self._execute(
                    conn,
                    "SELECT 1 FROM balances WHERE account_id = ? AND mode = ?",
                    (account_id, mode),
                ).fetchone()
                if exists is None:
                    count += self._execute(
                        conn,
                        "SELECT COUNT(*) FROM entries WHERE account_id = ? AND mode = ?",
                        (account_id, mode),
                    ).fetchone()[0]
        return int(count)

    def _verify_daily_totals(self, conn: Connection, low: str, high: str | None) -> list[str]:
        """The per-day totals are exactly what the entries add up to, day by day."""
        where, bounds = self._range("account_id", low, high)
        recomputed = (
            "SELECT t.account_id, t.mode, t.day, t.kind, t.amount_minor, t.entries,"  # noqa: S608 -- constants only
            " t.last_seq, e.balance_after_minor FROM (SELECT account_id, mode,"
            f" {self._ENTRY_DAY_SQL} AS day, kind, SUM(amount_minor) AS amount_minor,"
            f" COUNT(*) AS entries, MAX(seq) AS last_seq FROM entries WHERE {where}"
            " GROUP BY account_id, mode, day, kind) t JOIN entries e"
            " ON e.account_id = t.account_id AND e.mode = t.mode AND e.seq = t.last_seq"
        )
        stored = (
            "SELECT account_id, mode, day, kind, amount_minor, entries, last_seq,"  # noqa: S608 -- constants only
            f" balance_after_minor FROM daily_totals WHERE {where}"
        )
        problems = []
        for first, second, what in (
            (recomputed, stored, "days of entries are missing or wrong in daily_totals"),
            (stored, recomputed, "rows of daily_totals match no day of entries"),
        ):
            count = self._execute(
                conn,
                f"SELECT COUNT(*) FROM ({first} EXCEPT {second}) x",  # noqa: S608 -- constants only
                bounds + bounds,
            ).fetchone()[0]
            if count:
                problems.append(f"{count} {what}")
        return problems

    def _verify_transfers(self, conn: Connection, low: str, high: str | None) -> list[str]:
        """Every transfer (by its source, in the batch) has two legs that sum to zero: the
        source's -amount and the destination's +amount, both of kind transfer, in the
        transfer's mode; and every transfer entry of the batch is a leg of one."""
        problems: list[str] = []
        where, bounds = self._range("t.from_account", low, high)
        for transfer_id, amount, out_amount, in_amount, legs_ok in self._execute(
            conn,
            "SELECT t.id, t.amount_minor, o.amount_minor, i.amount_minor,"  # noqa: S608 -- constants only
            " CASE WHEN o.account_id = t.from_account AND i.account_id = t.to_account"
            " AND o.mode = t.mode AND i.mode = t.mode AND o.kind = 'transfer'"
            " AND i.kind = 'transfer' THEN 1 ELSE 0 END"
            " FROM transfers t LEFT JOIN entries o ON o.id = t.from_entry"
            f" LEFT JOIN entries i ON i.id = t.to_entry WHERE {where}",
            bounds,
        ).fetchall():
            if out_amount is None or in_amount is None or not legs_ok:
                problems.append(f"transfer {transfer_id}: its legs are not its two ledgers'")
            elif out_amount + in_amount != 0 or in_amount != amount:
                problems.append(
                    f"transfer {transfer_id}: legs {out_amount} and {in_amount} do not sum to"
                    f" zero around {amount}"
                )
        where, bounds = self._range("e.account_id", low, high)
        strays = self._execute(
            conn,
            "SELECT COUNT(*) FROM entries e WHERE e.kind = 'transfer' AND "  # noqa: S608 -- constants only
            + where
            + " AND NOT EXISTS (SELECT 1 FROM transfers t WHERE t.from_entry = e.id"
            " OR t.to_entry = e.id)",
            bounds,
        ).fetchone()[0]
        if strays:
            problems.append(f"{strays} transfer entries belong to no transfer")
        return problems

    def _verify_links(self, conn: Connection, low: str, high: str | None) -> list[str]:
        """Cross-row checks: refunds, captures and transfers."""
        problems = self._verify_transfers(conn, low, high)
        where, bounds = self._range("r.account_id", low, high)
        for refund_of, kind, charged, refunded, strangers in self._execute(
            conn,
            "SELECT r.refund_of, MIN(c.kind), -MIN(c.amount_minor), SUM(r.amount_minor),"  # noqa: S608 -- constants only
            " SUM(CASE WHEN r.account_id = c.account_id AND r.mode = c.mode"
            " AND COALESCE(r.attributed_to, '') = COALESCE(c.attributed_to, '') THEN 0 ELSE 1 END)"
            " FROM entries r JOIN entries c ON c.id = r.refund_of"
            f" WHERE r.refund_of IS NOT NULL AND {where} GROUP BY r.refund_of",
            bounds,
        ).fetchall():
            if kind != EntryKind.CHARGE.value or strangers:
                problems.append(f"refunds of {refund_of} do not refund a charge of their ledger")
            elif refunded > charged:
                problems.append(f"refunds of {refund_of} ({refunded}) exceed it ({charged})")
        where, bounds = self._range("h.account_id", low, high)
        for hold_id, status, captured, charged in self._execute(
            conn,
            "SELECT h.id, h.status, h.captured_minor, -e.amount_minor FROM holds h"  # noqa: S608 -- constants only
            f" LEFT JOIN entries e ON e.hold_id = h.id WHERE {where}"
            " AND ((h.status = 'captured') <> (e.id IS NOT NULL)"
            " OR (e.id IS NOT NULL AND (e.kind <> 'charge' OR e.account_id <> h.account_id"
            " OR e.mode <> h.mode OR -e.amount_minor <> h.captured_minor)))",
            bounds,
        ).fetchall():
            problems.append(
                f"hold {hold_id} ({status}, captured {captured}) does not match its charge"
                f" ({charged})"
            )
        return problems
