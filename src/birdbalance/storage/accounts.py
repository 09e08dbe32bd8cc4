"""Accounts: creating, reading, listing and counting them."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final

from birdbalance.errors import InvalidParameter, NotFound
from birdbalance.ids import new_id, utc_timestamp
from birdbalance.ledger import Mode
from birdbalance.records import Account, Idempotency, NewAccount, Page, SubAccounts
from birdbalance.spending import SpendLimit, period_keys

from .base import ACCOUNT_SQL, Connection, account_from_row, dumps
from .moves import LedgerMoves
from .spending import placeholders

#: How deep accounts nest: platform (1), reseller (2), customer (3).
MAX_DEPTH: Final = 3
#: An account id, as ``search`` takes it: that account alone, by one index seek.
_ACCOUNT_ID: Final = re.compile(r"acc_[0-9A-Z]{26}")


#: The shortest search the name index can answer (it indexes trigrams); a shorter one
#: reads the accounts in id order until the page fills.
MIN_INDEXED_SEARCH: Final = 3
#: The column that holds a subtree's root, by the root's depth (see migration 15).
SUBTREE_COLUMNS: Final = {1: "a.root_id", 2: "a.branch_id", 3: "a.id"}
#: The deepest page of a parent's sub-accounts, lowest first (each page sorts them all).
MAX_OVERVIEW_OFFSET: Final = 100_000
#: Most names a search takes from the index. Text that more names contain reads the
#: accounts in id order instead: so common, it fills a page within a few rows, where
#: sorting every match by id would cost in proportion to all of them (a second for
#: "customer" among a million "Customer n").
MAX_INDEXED_MATCHES: Final = 5000


def fts_phrase(search: str) -> str:
    """``search`` as one FTS5 phrase: of trigrams, it matches exactly "contains it"."""
    return '"' + search.replace('"', '""') + '"'


def account_page_sql(
    cursor: str | None,
    limit: int,
    search: str | None,
    name_index: str | None = None,
    within: tuple[str, str] | None = None,
) -> tuple[str, list[Any]]:
    """The query of one page of accounts (one more row than ``limit``: is there a next?).

    Keyset-paged by id. ``search``: an account id matches that account alone (an index
    seek); any other text matches part of the name, whatever its case. The engine's
    ``name_index`` condition (taking the text as an FTS5 phrase) answers a search of
    :data:`MIN_INDEXED_SEARCH` characters or more from its index; otherwise a LIKE does
    (on PostgreSQL, through its trigram index; SQLite's lower() folds ASCII only).
    """
    # The cursor bounds both ledgers' rows too: PostgreSQL merge-joins them, and without
    # it reads every ledger before the cursor (a page deep in a million accounts cost
    # in proportion to its depth).
    sql = ACCOUNT_SQL + " WHERE a.id > ? AND l.account_id > ? AND t.account_id > ?"
    args: list[Any] = [cursor or ""] * 3
    if within is not None:
        # A subtree is one index range: its accounts share their ancestor at its level.
        column, root = within
        assert column in SUBTREE_COLUMNS.values()
        sql += f" AND {column} = ?"
        args.append(root)
    if search and _ACCOUNT_ID.fullmatch(search):
        sql += " AND a.id = ?"
        args.append(search)
    elif search:
        if name_index is not None and len(search) >= MIN_INDEXED_SEARCH:
            sql += name_index
            args.append(fts_phrase(search))
        else:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            # The engine's lower() on both sides: PostgreSQL's LIKE does not ignore case.
            sql += " AND lower(a.name) LIKE lower(?) ESCAPE '\\'"
            args.append(f"%{escaped}%")
    return sql + " ORDER BY a.id LIMIT ?", [*args, limit + 1]


class AccountStore(LedgerMoves):
    """Accounts and the two ledgers (live, test) each one has."""

    #: The engine's condition that narrows a name search through its own index (one
    #: parameter: the text as an FTS5 phrase), or None where the LIKE uses the index by
    #: itself; and how it counts the index's matches (the phrase, a limit).
    name_index: ClassVar[str | None] = None
    name_matches: ClassVar[str | None] = None

    def create_account(self, new: NewAccount, idem: Idempotency | None) -> Account:
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "account")
            if replayed is not None:
                return self._account(conn, replayed)
            account_id = new_id("acc")
            depth, root_id, branch_id = 1, account_id, None
            if new.parent_id is not None:
                depth, root_id, branch_id = self._child_place(conn, new, account_id)
            self._execute(
                conn,
                "INSERT INTO accounts (id, name, payment, asset, scale, credit_limit_minor,"
                " metadata, created_at, parent_id, depth, funding_id, spend_limit_minor,"
                " spend_limit_period, root_id, branch_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account_id,
                    new.name,
                    new.payment.value,
                    new.asset,
                    new.scale,
                    new.credit_limit_minor,
                    dumps(new.metadata),
                    utc_timestamp(),
                    new.parent_id,
                    depth,
                    new.parent_id if new.shared else None,
                    None if new.spend_limit is None else new.spend_limit.amount_minor,
                    None if new.spend_limit is None else new.spend_limit.period.value,
                    root_id,
                    branch_id,
                ),
            )
            for mode in Mode:
                self._execute(
                    conn,
                    "INSERT INTO balances (account_id, mode, balance_minor, seq, held_minor)"
                    " VALUES (?, ?, 0, 0, 0)",
                    (account_id, mode.value),
                )
            self._remember(conn, idem, "account", account_id)
            return self._account(conn, account_id)

    def _child_place(
        self, conn: Connection, new: NewAccount, account_id: str
    ) -> tuple[int, str, str | None]:
        """Where a sub-account of ``new.parent_id`` goes: its depth, its top-level and
        level-2 ancestors; or raise: 404 for an unknown parent, 422 past
        :data:`MAX_DEPTH`, for another asset than the parent's, or for a shared one
        whose parent cannot lend it a balance."""
        row = self._execute(
            conn,
            "SELECT asset, depth, payment, funding_id, root_id, branch_id FROM accounts"
            " WHERE id = ?",
            (new.parent_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no account {new.parent_id}", "parent")
        asset, depth = str(row[0]), int(row[1])
        if new.shared and row[3] is not None:
            raise InvalidParameter(
                f"{new.parent_id} spends its own parent's balance: a shared sub-account's"
                " parent must have a balance of its own",
                "balance",
            )
        if new.shared and row[2] != new.payment.value:
            raise InvalidParameter(
                f"a shared sub-account has its parent's payment ({row[2]})", "payment"
            )
        if depth >= MAX_DEPTH:
            raise InvalidParameter(
                f"accounts nest at most {MAX_DEPTH} levels deep (platform, reseller,"
                f" customer): {new.parent_id} is at level {depth}",
                "parent",
            )
        if asset != new.asset:
            raise InvalidParameter(
                f"a sub-account holds its parent's asset ({asset}), not {new.asset}", "type"
            )
        root_id = str(row[4])
        branch_id = account_id if depth == 1 else str(row[5])
        return depth + 1, root_id, branch_id

    def set_spend_limit(
        self, account_id: str, limit: SpendLimit | None, idem: Idempotency | None = None
    ) -> Account:
        """Set or remove a shared sub-account's spending limit (422 for any other)."""
        with self._write() as conn:
            if (done := self._replayed_id(conn, idem, "account")) is not None:
                return self._account(conn, done)
            account = self._account(conn, account_id)
            if account.funding_id is None:
                raise InvalidParameter(
                    f"{account_id} has a balance of its own: only a shared sub-account has"
                    " a spending limit",
                    "account",
                )
            self._execute(
                conn,
                "UPDATE accounts SET spend_limit_minor = ?, spend_limit_period = ? WHERE id = ?",
                (
                    None if limit is None else limit.amount_minor,
                    None if limit is None else limit.period.value,
                    account_id,
                ),
            )
            self._remember(conn, idem, "account", account_id)
            return self._account(conn, account_id)

    def list_subaccounts(self, parent_id: str, cursor: str | None, limit: int) -> SubAccounts:
        """A page of ``parent_id``'s direct sub-accounts (by id), and the count and live
        totals of all of them."""
        with self._read() as conn:
            self._account(conn, parent_id)  # 404 for an unknown parent
            rows = self._execute(
                conn,
                ACCOUNT_SQL + " WHERE a.parent_id = ? AND a.id > ? ORDER BY a.id LIMIT ?",
                (parent_id, cursor or "", limit + 1),
            ).fetchall()
            count, balance, held = self._subaccount_totals(conn, parent_id)
            now = utc_timestamp()
            items = self._with_shared(conn, [account_from_row(r) for r in rows[:limit]], now)
            usage = self._month_usage(conn, items, now)
        page = Page(items, items[-1].id if len(rows) > limit else None)
        return SubAccounts(page, count, balance, held, usage)

    def lowest_subaccounts(self, parent_id: str, offset: int, limit: int) -> SubAccounts:
        """A page of ``parent_id``'s direct sub-accounts, the lowest first: by what each
        may spend of its live ledger now (its available amount, or a shared one's
        :func:`birdbalance.spending.spendable`), then by id. Paged by offset (at most
        :data:`MAX_OVERVIEW_OFFSET`): each page sorts them all, in the database."""
        assert 0 <= offset <= MAX_OVERVIEW_OFFSET and 1 <= limit <= 1000
        now = utc_timestamp()
        day, month, _ = period_keys(now)
        with self._snapshot() as conn:
            parent = self._account(conn, parent_id)  # 404 for an unknown parent
            parent_available = parent.live.balance_minor - parent.live.held_minor
            left = (
                "CASE WHEN a.spend_limit_minor - COALESCE(s.spent_minor, 0) > 0"
                " THEN a.spend_limit_minor - COALESCE(s.spent_minor, 0) ELSE 0 END"
            )
            spendable = (
                "CASE WHEN a.funding_id IS NULL THEN l.balance_minor - l.held_minor"
                f" WHEN a.spend_limit_minor IS NULL OR {left} > ? THEN ? ELSE {left} END"
            )
            # The order first, from the least it needs; then the page's accounts whole.
            ids = [
                str(r[0])
                for r in self._execute(
                    conn,
                    "SELECT a.id FROM accounts a JOIN balances l ON l.account_id = a.id"  # noqa: S608 -- constants only
                    " AND l.mode = 'live'"
                    " LEFT JOIN spending s ON s.account_id = a.id AND s.mode = 'live'"
                    " AND s.period = CASE a.spend_limit_period WHEN 'day' THEN ?"
                    " WHEN 'month' THEN ? ELSE 'all' END"
                    f" WHERE a.parent_id = ? ORDER BY {spendable}, a.id LIMIT ? OFFSET ?",
                    (day, month, parent_id, parent_available, parent_available, limit + 1, offset),
                ).fetchall()
            ]
            page_ids = ids[:limit]
            rows = []
            if page_ids:
                found = {
                    str(r[0]): r
                    for r in self._execute(
                        conn,
                        ACCOUNT_SQL + f" WHERE a.id IN ({placeholders(len(page_ids))})",
                        page_ids,
                    ).fetchall()
                }
                rows = [found[i] for i in page_ids]
            count, balance, held = self._subaccount_totals(conn, parent_id)
            items = self._with_shared(conn, [account_from_row(r) for r in rows], now)
            usage = self._month_usage(conn, items, now)
        more = str(offset + limit) if len(ids) > limit else None
        return SubAccounts(Page(items, more), count, balance, held, usage)

    def _subaccount_totals(self, conn: Connection, parent_id: str) -> tuple[int, int, int]:
        """How many direct sub-accounts, and the sums of their live balances and holds."""
        count, balance, held = self._execute(
            conn,
            "SELECT COUNT(*), COALESCE(SUM(l.balance_minor), 0),"
            " COALESCE(SUM(l.held_minor), 0) FROM accounts a JOIN balances l"
            " ON l.account_id = a.id AND l.mode = 'live' WHERE a.parent_id = ?",
            (parent_id,),
        ).fetchone()
        return int(count), int(balance), int(held)

    def _month_usage(self, conn: Connection, accounts: list[Account], now: str) -> dict[str, int]:
        """Each account's live usage (charges less refunds) this UTC month: an own
        ledger's from its daily totals, a shared sub-account's from its counter."""
        own = [a.id for a in accounts if a.funding_id is None]
        shared = [a.id for a in accounts if a.funding_id is not None]
        usage: dict[str, int] = {}
        if own:
            rows = self._execute(
                conn,
                "SELECT account_id, COALESCE(SUM(amount_minor), 0) FROM daily_totals"  # noqa: S608 -- placeholders only
                f" WHERE account_id IN ({placeholders(len(own))}) AND mode = 'live'"
                " AND day >= ? AND kind IN ('charge', 'refund') GROUP BY account_id",
                [*own, now[:7] + "-01"],
            ).fetchall()
            usage.update({str(r[0]): -int(r[1]) for r in rows})
        if shared:
            rows = self._execute(
                conn,
                "SELECT account_id, spent_minor FROM spending"  # noqa: S608 -- placeholders only
                f" WHERE account_id IN ({placeholders(len(shared))}) AND mode = 'live'"
                " AND period = ?",
                [*shared, period_keys(now)[1]],
            ).fetchall()
            usage.update({str(r[0]): int(r[1]) for r in rows})
        return usage

    def get_account(self, account_id: str) -> Account:
        with self._read() as conn:
            return self._account(conn, account_id)

    def list_accounts(
        self, cursor: str | None, limit: int, search: str | None, within: str | None = None
    ) -> Page[Account]:
        with self._read() as conn:
            name_index = self.name_index
            if name_index is not None and search and len(search) >= MIN_INDEXED_SEARCH:
                assert self.name_matches is not None
                matches = self._execute(
                    conn, self.name_matches, (fts_phrase(search), MAX_INDEXED_MATCHES + 1)
                ).fetchone()[0]
                if matches > MAX_INDEXED_MATCHES:
                    name_index = None  # so common that a page fills in id order
            subtree = None
            if within is not None:
                row = self._execute(
                    conn, "SELECT depth FROM accounts WHERE id = ?", (within,)
                ).fetchone()
                if row is None:
                    return Page([], None)
                subtree = (SUBTREE_COLUMNS[int(row[0])], within)
            sql, args = account_page_sql(cursor, limit, search, name_index, subtree)
            rows = self._execute(conn, sql, args).fetchall()
            items = self._with_shared(
                conn, [account_from_row(r) for r in rows[:limit]], utc_timestamp()
            )
        return Page(items, items[-1].id if len(rows) > limit else None)

    def count_accounts(self) -> int:
        with self._read() as conn:
            return int(self._execute(conn, "SELECT COUNT(*) FROM accounts").fetchone()[0])
