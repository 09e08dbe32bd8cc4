"""What every storage concern stands on: the engine hooks, idempotency records, and
reading an account.

Each engine (``sqlite.py``, ``postgres.py``) supplies the hooks: how connections and
transactions are made, how a write serializes against other writes of the same ledger,
and how migrations run. The SQL of every concern is written once, with ``?``
placeholders, in the subset both engines share.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar, Final, Protocol

from birdbalance.errors import IdempotencyConflict, NotFound
from birdbalance.ids import utc_timestamp
from birdbalance.keys import KeyHasher
from birdbalance.ledger import Mode, Payment
from birdbalance.records import Account, Idempotency, LedgerTotals
from birdbalance.spending import stored_limit

from .schema import migrations

LedgerKey = tuple[str, Mode]


class Cursor(Protocol):
    """What the store reads from a statement's result (``sqlite3`` and psycopg alike)."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the store's SQL needs of a connection (``sqlite3`` and psycopg alike); the
    engines' hooks (:meth:`SQLBase._execute`) are how the concerns use it."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...


#: Names the lock that serializes the creations counted against one bound (PostgreSQL:
#: a transaction-scoped advisory lock; SQLite's write lock already serializes them).
LIMIT_LOCK: Final = "birdbalance-limit:"


#: The PostgreSQL notification channel a commit that makes deliveries due signals on.
DELIVERIES_CHANNEL: Final = "birdbalance_deliveries"

#: Whether a write on this thread made deliveries due since the thread last asked
#: (:meth:`SQLBase.take_deliveries_due`). Per thread, because each write runs on one.
_due_here = threading.local()


INSERT_IDEMPOTENCY_SQL: Final = (
    "INSERT INTO idempotency_keys (key, fingerprint, resource_type, resource_id,"
    " created_at) VALUES (?, ?, ?, ?, ?)"
)


def dumps(value: dict[str, Any]) -> str:
    """Metadata as stored: compact JSON with sorted keys."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


ACCOUNT_SQL: Final = (
    "SELECT a.id, a.name, a.payment, a.asset, a.scale, a.credit_limit_minor, a.metadata,"
    " a.created_at, l.balance_minor, l.seq, l.held_minor, t.balance_minor, t.seq,"
    " t.held_minor, a.parent_id, a.funding_id, a.spend_limit_minor, a.spend_limit_period"
    " FROM accounts a"
    " JOIN balances l ON l.account_id = a.id AND l.mode = 'live'"
    " JOIN balances t ON t.account_id = a.id AND t.mode = 'test'"
)


def account_from_row(row: Any) -> Account:
    return Account(
        id=row[0],
        name=row[1],
        payment=Payment(row[2]),
        asset=row[3],
        scale=row[4],
        credit_limit_minor=row[5],
        metadata=json.loads(row[6]),
        created_at=row[7],
        live=LedgerTotals(row[8], row[9], row[10]),
        test=LedgerTotals(row[11], row[12], row[13]),
        parent_id=row[14],
        funding_id=row[15],
        spend_limit=stored_limit(row[16], row[17]),
    )


class SQLBase:
    """The engine hooks every concern's SQL runs through, idempotency records, and
    reading an account. Engines implement the hooks; nothing here knows the engine."""

    #: Folder of this engine's migrations under ``storage/migrations``.
    engine: ClassVar[str]
    #: Appended to the ledger read of a write: the row lock, where the engine has one.
    for_update: ClassVar[str] = ""
    #: Appended to the claim of due deliveries, so nodes never claim the same ones.
    skip_locked: ClassVar[str] = ""
    #: How many writes may run at once in one process.
    max_concurrent_writes: int = 1
    #: Digests keys and tokens; :func:`birdbalance.storage.open_store` sets it.
    key_hasher: KeyHasher | None = None

    def _read(self) -> AbstractContextManager[Connection]:
        """A connection for one or more independent reads."""
        raise NotImplementedError

    def _snapshot(self) -> AbstractContextManager[Connection]:
        """A connection in a read transaction: every statement sees the same state."""
        raise NotImplementedError

    def _write(self, *, rollback: bool = False) -> AbstractContextManager[Connection]:
        """A connection in a write transaction, committed on success (rolled back all the
        same with ``rollback``: a dry run)."""
        raise NotImplementedError

    @contextmanager
    def _batch_write(self) -> Iterator[Connection]:
        """A write transaction for a group commit.

        Engines that can pipeline (PostgreSQL) queue its statements until a result or a
        row count is read, so a batch costs three round trips instead of one per
        statement; elsewhere statements run as they are made.
        """
        with self._write() as conn:
            yield conn

    def _rowcount(self, conn: Connection, cursor: Any) -> int:
        """The rows ``cursor``'s statement changed (engines that pipeline settle first)."""
        return int(cursor.rowcount)

    def _execute(self, conn: Connection, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        """Execute ``sql`` (with ``?`` placeholders) and return the cursor."""
        raise NotImplementedError

    def _execute_many(self, conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Execute ``sql`` once per row (batched by the driver); the rows it changed."""
        raise NotImplementedError

    def _lock_key(self, conn: Connection, key: str) -> None:
        """Serialize writes that carry the same ``Idempotency-Key``, where needed."""

    def _lock_keys(self, conn: Connection, keys: Sequence[str]) -> None:
        """:meth:`_lock_key` for several keys at once, always in one global order."""
        for key in sorted(set(keys)):
            self._lock_key(conn, key)

    def _lock_account(self, conn: Connection, account_id: str) -> None:
        """Serialize key changes of one account, where the engine has row locks."""

    def _deliveries_due(self, conn: Connection) -> None:
        """Note, inside the writing transaction, that it makes deliveries due now.

        The thread's next :meth:`take_deliveries_due` says so, which is how the process
        that wrote wakes its deliverer. Engines that can tell other processes (PostgreSQL's
        ``NOTIFY``, sent only if the transaction commits) add that here.
        """
        _due_here.flag = True

    def delivery_listener(self) -> Any:
        """What wakes this process when another one makes deliveries due, where the
        engine can (PostgreSQL); None elsewhere (the deliverer's poll finds them)."""
        return None

    def take_deliveries_due(self) -> bool:
        """Whether a write on this thread made deliveries due since the last call.

        Asked after the write's transaction has ended: a rolled-back write can answer
        True, which only costs a claim that finds nothing.
        """
        due = bool(getattr(_due_here, "flag", False))
        _due_here.flag = False
        return due

    def schema_version(self) -> tuple[int, int]:
        raise NotImplementedError

    def latest_version(self) -> int:
        return len(migrations(self.engine))

    def close(self) -> None:
        raise NotImplementedError

    #: The UTC day (``YYYY-MM-DD``) of an entry's ``created_at``, as the engine writes it.
    _ENTRY_DAY_SQL: ClassVar[str] = "substr(created_at, 1, 10)"

    def _replayed_id(self, conn: Connection, idem: Idempotency | None, kind: str) -> str | None:
        if idem is None:
            return None
        self._lock_key(conn, idem.key)
        row = self._execute(
            conn,
            "SELECT fingerprint, resource_type, resource_id FROM idempotency_keys WHERE key = ?",
            (idem.key,),
        ).fetchone()
        if row is None:
            return None
        if row[0] != idem.fingerprint or row[1] != kind:
            raise IdempotencyConflict()
        return str(row[2])

    def _remember(
        self, conn: Connection, idem: Idempotency | None, kind: str, resource_id: str
    ) -> None:
        if idem is not None:
            row = (idem.key, idem.fingerprint, kind, resource_id, utc_timestamp())
            self._execute(conn, INSERT_IDEMPOTENCY_SQL, row)

    def _account(self, conn: Connection, account_id: str) -> Account:
        row = self._execute(conn, ACCOUNT_SQL + " WHERE a.id = ?", (account_id,)).fetchone()
        if row is None:
            raise NotFound(f"no account {account_id}", "account")
        return account_from_row(row)
