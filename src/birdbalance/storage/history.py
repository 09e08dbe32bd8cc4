"""Reading a ledger's past: entries, daily totals, the balance at a moment, statements,
and the balances the metrics show."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Final

from birdbalance.errors import InvalidParameter
from birdbalance.ledger import EntryKind, Mode
from birdbalance.records import (
    Account,
    BalanceAt,
    DailySeries,
    DayTotal,
    Entry,
    EntryFilter,
    LedgerBalance,
    Page,
    Statement,
)
from birdbalance.settings import MAX_LEDGER_GAUGES

from .base import Connection
from .ledgers import ENTRY_SQL, entry_from_row
from .moves import LedgerMoves

#: Most entries one page of a statement holds.
MAX_STATEMENT_PAGE: Final = 10_000


#: The point-in-time lookup: one seek on ``entries_at`` (account, mode, created_at, seq).
_FIRST_SEQ_FROM_SQL: Final = (
    "SELECT seq FROM entries WHERE account_id = ? AND mode = ? AND created_at >= ?"
    " ORDER BY created_at, seq LIMIT 1"
)


#: The ledger's last entry before a moment: ``balance_after_minor, seq``.
_LAST_BEFORE_SQL: Final = (
    "SELECT balance_after_minor, seq FROM entries WHERE account_id = ? AND mode = ?"
    " AND created_at < ? ORDER BY created_at DESC, seq DESC LIMIT 1"
)


BALANCE_AT_SQL: Final = (
    "SELECT balance_after_minor, seq, created_at FROM entries"
    " WHERE account_id = ? AND mode = ? AND created_at <= ?"
    " ORDER BY created_at DESC, seq DESC LIMIT 1"
)


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


class HistoryStore(LedgerMoves):
    """Reads of a ledger's past; they never write."""

    def list_entries(
        self,
        account_id: str,
        mode: Mode,
        cursor: str | None,
        limit: int,
        filters: EntryFilter | None = None,
    ) -> Page[Entry]:
        """Newest first. Every filter is an index range in seq order: a reference, or a
        kind other than charge, has its own index; charges (most entries) are read from
        the seq index; a date range becomes a seq range by two seeks on entries_at (entry
        times never go backwards in a ledger). So a page costs the same on a ledger of a
        million entries as on one of ten."""
        assert 1 <= limit <= MAX_STATEMENT_PAGE
        wanted = filters or EntryFilter()
        before = int(cursor) if cursor else 2**62
        low = 1
        with self._read() as conn:
            owner, column = self._entries_of(conn, account_id)
            if wanted.start is not None or wanted.end is not None:
                low, high = self._seq_range(conn, owner, mode, wanted.start, wanted.end)
                if low > high:
                    return Page([], None)
                # One upper bound only: given two, SQLite may seek by the looser one and
                # filter by the other row by row (70 ms at the middle of 1M entries).
                before = min(before, high + 1)
            sql = ENTRY_SQL + f" WHERE {column} = ? AND mode = ? AND seq < ? AND seq >= ?"
            args: list[Any] = [account_id, mode.value, before, low]
            if wanted.kind is not None:
                sql += " AND kind = ?"
                args.append(wanted.kind.value)
                if wanted.kind is not EntryKind.CHARGE:
                    # Spelled as entries_kind's WHERE, so SQLite sees the index applies.
                    sql += " AND kind <> 'charge'"
            if wanted.reference is not None:
                sql += " AND reference = ?"
                args.append(wanted.reference)
            rows = self._execute(conn, sql + " ORDER BY seq DESC LIMIT ?", [*args, limit + 1])
            rows = rows.fetchall()
        items = [entry_from_row(r) for r in rows[:limit]]
        return Page(items, str(items[-1].seq) if len(rows) > limit else None)

    def _entries_of(self, conn: Connection, account_id: str) -> tuple[str, str]:
        """Whose ledger holds the account's entries, and the column that picks them: its
        own (``account_id``), or a shared sub-account's parent's (``attributed_to``; its
        entries there are in that ledger's seq order, on their own index)."""
        owner = self._funding_of(conn, [account_id]).get(account_id, account_id)
        return owner, "account_id" if owner == account_id else "attributed_to"

    def _seq_range(
        self, conn: Connection, account_id: str, mode: Mode, start: str | None, end: str | None
    ) -> tuple[int, int]:
        """The seqs of the ledger's entries in ``[start, end)``: (first, last), first > last
        when there are none."""
        ledger = (account_id, mode.value)
        low, high = 1, 2**62
        if start is not None:
            row = self._execute(conn, _FIRST_SEQ_FROM_SQL, (*ledger, start)).fetchone()
            if row is None:
                return 1, 0
            low = int(row[0])
        if end is not None:
            row = self._execute(conn, _LAST_BEFORE_SQL, (*ledger, end)).fetchone()
            if row is None:
                return 1, 0
            high = int(row[1])
        return low, high

    def daily_totals(
        self, account_id: str, mode: Mode, first_day: str, last_day: str
    ) -> DailySeries:
        """The ledger's days ``[first_day, last_day]`` (UTC ``YYYY-MM-DD``) from the per-day
        totals, and the balance before them: at most four rows a day, and one seek."""
        assert first_day <= last_day
        ledger = (account_id, mode.value)
        with self._snapshot() as conn:
            account = self._account(conn, account_id)
            if account.funding_id is not None:
                return self._attributed_days(conn, account, mode, first_day, last_day)
            before = self._execute(conn, _LAST_BEFORE_SQL, (*ledger, first_day)).fetchone()
            rows = self._execute(
                conn,
                "SELECT day, kind, amount_minor, entries, last_seq, balance_after_minor"
                " FROM daily_totals WHERE account_id = ? AND mode = ? AND day >= ?"
                " AND day <= ? ORDER BY day, last_seq",
                (*ledger, first_day, last_day),
            ).fetchall()
        days = [DayTotal(str(r[0]), EntryKind(r[1]), *map(int, r[2:])) for r in rows]
        return DailySeries(account, 0 if before is None else int(before[0]), days)

    def _attributed_days(
        self, conn: Connection, account: Account, mode: Mode, first_day: str, last_day: str
    ) -> DailySeries:
        """A shared sub-account's days: the totals of its entries on its parent's ledger
        (its "balance" is the sum of them, from 0), read on its own index."""
        assert account.funding_id is not None
        mine = (account.id, mode.value)
        low, high = self._seq_range(conn, account.funding_id, mode, first_day, _next_day(last_day))
        before = self._kind_totals(
            conn, " WHERE attributed_to = ? AND mode = ? AND seq < ?", (*mine, low)
        )
        rows = self._execute(
            conn,
            f"SELECT {self._ENTRY_DAY_SQL} AS day, kind, SUM(amount_minor), COUNT(*), MAX(seq)"  # noqa: S608 -- constants only
            " FROM entries WHERE attributed_to = ? AND mode = ? AND seq >= ? AND seq <= ?"
            " GROUP BY day, kind ORDER BY day, 5",
            (*mine, low, high),
        ).fetchall()
        running = sum(r[1] for r in before)
        days = []
        for r in rows:
            running += int(r[2])
            days.append(
                DayTotal(str(r[0]), EntryKind(r[1]), int(r[2]), int(r[3]), int(r[4]), running)
            )
        return DailySeries(account, sum(r[1] for r in before), days)

    def balance_at(self, account_id: str, mode: Mode, at: str) -> BalanceAt:
        """The balance after the ledger's last entry at or before ``at`` (one index seek)."""
        with self._read() as conn:
            account = self._account(conn, account_id)
            if account.funding_id is not None:
                raise InvalidParameter(
                    f"{account_id} spends the balance of {account.funding_id} (a shared"
                    " sub-account) and has none of its own: see its parent's",
                    "account",
                )
            row = self._execute(conn, BALANCE_AT_SQL, (account_id, mode.value, at)).fetchone()
        if row is None:
            return BalanceAt(0, 0, None, account)
        return BalanceAt(row[0], row[1], row[2], account)

    def statement(
        self,
        account_id: str,
        mode: Mode,
        start: str,
        end: str,
        after_seq: int,
        limit: int,
        *,
        summary: bool = True,
    ) -> Statement:
        """The ledger over ``[start, end)``, read in one snapshot (so it always adds up).

        Without ``summary`` only the page of entries is read (opening, closing and totals
        are 0 and empty): the later pages of an export need nothing else.
        """
        assert start <= end and after_seq >= 0 and 1 <= limit <= MAX_STATEMENT_PAGE
        mine = (account_id, mode.value)

        def page(
            conn: Connection, column: str, low: int, high: int
        ) -> tuple[list[Entry], int | None]:
            # The range as seqs, so the page is one range read on the seq index: filtering
            # by time instead scanned every entry before the range.
            if low > high:
                return [], None
            rows = self._execute(
                conn,
                ENTRY_SQL + f" WHERE {column} = ? AND mode = ? AND seq > ? AND seq <= ?"
                " ORDER BY seq LIMIT ?",
                (*mine, max(after_seq, low - 1), high, limit + 1),
            ).fetchall()
            entries = [entry_from_row(r) for r in rows[:limit]]
            return entries, entries[-1].seq if len(rows) > limit else None

        if not summary:
            with self._read() as conn:
                account = self._account(conn, account_id)
                owner, column = self._entries_of(conn, account_id)
                seqs = self._seq_range(conn, owner, mode, start, end)
                entries, more = page(conn, column, *seqs)
            return Statement(account, 0, 0, {}, {}, entries, more)
        with self._snapshot() as conn:
            account = self._account(conn, account_id)
            owner, column = self._entries_of(conn, account_id)
            ledger = (owner, mode.value)
            # Entry times never go backwards in a ledger: the balance before a moment is
            # the last entry's before it (one seek on entries_at), and the range is the run
            # of seqs after the opening's up to the closing's. The totals read that run on
            # the ledger's seq index, so they never touch another ledger's entries, however
            # the planner estimates a time range.
            opening = self._execute(conn, _LAST_BEFORE_SQL, (*ledger, start)).fetchone()
            closing = self._execute(conn, _LAST_BEFORE_SQL, (*ledger, end)).fetchone()
            low = 1 if opening is None else int(opening[1]) + 1
            high = 0 if closing is None else int(closing[1])
            totals = self._kind_totals(
                conn,
                f" WHERE {column} = ? AND mode = ? AND seq >= ? AND seq <= ?",
                (*mine, low, high),
            )
            entries, more = page(conn, column, low, high)
            opening_minor = 0 if opening is None else int(opening[0])
            if column == "attributed_to":
                # A shared sub-account's balance is what it moved of its parent's ledger:
                # the sum of its entries (charges negative), from 0.
                before = self._kind_totals(
                    conn, " WHERE attributed_to = ? AND mode = ? AND seq < ?", (*mine, low)
                )
                opening_minor = sum(r[1] for r in before)
        sums = {str(r[0]): int(r[1]) for r in totals}
        closing_minor = 0 if closing is None else int(closing[0])
        if column == "attributed_to":
            closing_minor = opening_minor + sum(sums.values())
        assert opening_minor + sum(sums.values()) == closing_minor, "a statement must add up"
        counts = {str(r[0]): int(r[2]) for r in totals}
        return Statement(account, opening_minor, closing_minor, sums, counts, entries, more)

    def _kind_totals(
        self, conn: Connection, where: str, args: tuple[Any, ...]
    ) -> list[tuple[str, int, int]]:
        """``(kind, sum, count)`` of the entries ``where`` selects. Exact however large:
        PostgreSQL's SUM of a BIGINT is a NUMERIC (engines without one override this)."""
        rows = self._execute(
            conn,
            "SELECT kind, SUM(amount_minor), COUNT(*) FROM entries"  # noqa: S608 -- constants only
            + where
            + " GROUP BY kind",
            args,
        ).fetchall()
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    def ledger_balances(self, limit: int) -> list[LedgerBalance]:
        assert 0 <= limit <= MAX_LEDGER_GAUGES
        with self._read() as conn:
            rows = self._execute(
                conn,
                "SELECT b.account_id, b.mode, a.asset, a.scale, b.balance_minor, b.held_minor"
                " FROM balances b JOIN accounts a ON a.id = b.account_id"
                " ORDER BY b.account_id, b.mode LIMIT ?",
                (limit,),
            ).fetchall()
        return [LedgerBalance(r[0], Mode(r[1]), *r[2:]) for r in rows]
