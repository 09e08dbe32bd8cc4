"""Accounts: creating, reading, listing and counting them."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final

from birdbalance.ids import new_id, utc_timestamp
from birdbalance.ledger import Mode
from birdbalance.records import Account, Idempotency, NewAccount, Page

from .base import ACCOUNT_SQL, account_from_row, dumps
from .moves import LedgerMoves

#: An account id, as ``search`` takes it: that account alone, by one index seek.
_ACCOUNT_ID: Final = re.compile(r"acc_[0-9A-Z]{26}")


#: The shortest search the name index can answer (it indexes trigrams); a shorter one
#: reads the accounts in id order until the page fills.
MIN_INDEXED_SEARCH: Final = 3
#: Most names a search takes from the index. Text that more names contain reads the
#: accounts in id order instead: so common, it fills a page within a few rows, where
#: sorting every match by id would cost in proportion to all of them (a second for
#: "customer" among a million "Customer n").
MAX_INDEXED_MATCHES: Final = 5000


def fts_phrase(search: str) -> str:
    """``search`` as one FTS5 phrase: of trigrams, it matches exactly "contains it"."""
    return '"' + search.replace('"', '""') + '"'


def account_page_sql(
    cursor: str | None, limit: int, search: str | None, name_index: str | None = None
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
            self._execute(
                conn,
                "INSERT INTO accounts (id, name, payment, asset, scale, credit_limit_minor,"
                " metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account_id,
                    new.name,
                    new.payment.value,
                    new.asset,
                    new.scale,
                    new.credit_limit_minor,
                    dumps(new.metadata),
                    utc_timestamp(),
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

    def get_account(self, account_id: str) -> Account:
        with self._read() as conn:
            return self._account(conn, account_id)

    def list_accounts(self, cursor: str | None, limit: int, search: str | None) -> Page[Account]:
        with self._read() as conn:
            name_index = self.name_index
            if name_index is not None and search and len(search) >= MIN_INDEXED_SEARCH:
                assert self.name_matches is not None
                matches = self._execute(
                    conn, self.name_matches, (fts_phrase(search), MAX_INDEXED_MATCHES + 1)
                ).fetchone()[0]
                if matches > MAX_INDEXED_MATCHES:
                    name_index = None  # so common that a page fills in id order
            sql, args = account_page_sql(cursor, limit, search, name_index)
            rows = self._execute(conn, sql, args).fetchall()
        items = [account_from_row(r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    def count_accounts(self) -> int:
        with self._read() as conn:
            return int(self._execute(conn, "SELECT COUNT(*) FROM accounts").fetchone()[0])
