"""The PostgreSQL engine: psycopg 3 and a bounded connection pool.

Several birdbalance processes (and nodes) can share one PostgreSQL database: writes
serialize per ledger on the ledger's ``balances`` row (``SELECT ... FOR UPDATE``) and per
``Idempotency-Key`` on a transaction-scoped advisory lock, so limits hold and a key is
used once across all of them (see :mod:`birdbalance.storage.sql`). Timestamps are
``timestamptz`` and metadata ``jsonb`` in the database; the loaders below hand them to
the shared code in the same text forms SQLite stores, so both engines answer alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, ClassVar, Final

import psycopg
from psycopg.adapt import Buffer, Loader
from psycopg_pool import ConnectionPool, PoolTimeout, TooManyRequests

from birdbalance.errors import InternalError, ServiceUnavailable
from birdbalance.ids import utc_timestamp
from birdbalance.records import BalanceView
from birdbalance.timestamps import (
    MAX_REFERENCE_ROUND_TRIP_S,
    MAX_REFERENCE_SKEW_S,
    REFERENCE_EVERY_S,
    follow_reference,
)

from .base import DELIVERIES_CHANNEL, Connection
from .commit_watch import CommitWatch, watch_warnings
from .credentials import (
    LOOKUP_COLUMNS,
    LOOKUP_FROM,
    LOOKUP_UNEXPIRED,
    balance_view,
    shared_lookup,
    shared_view,
)
from .postgres_listen import DeliveryListener
from .schema import pending_migrations
from .sql import SQLStore

#: Requests that may wait for a pooled connection at once; more are refused with 503.
MAX_POOL_WAITING: Final = 1024
#: The advisory-lock pair that serializes migrations across processes.
_MIGRATION_LOCK: Final = (0x62697264, 1)
_TIMESTAMP: Final = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00$")


class _TimestampLoader(Loader):
    """``timestamptz`` as RFC 3339 UTC text with microseconds, the form SQLite stores."""

    def load(self, data: Buffer) -> str:
        text = bytes(data).decode("ascii")
        match = _TIMESTAMP.match(text)
        assert match is not None, f"unexpected timestamp {text!r} (TimeZone must be UTC)"
        return f"{match[1]}T{match[2]}.{(match[3] or '').ljust(6, '0')}Z"


class _JSONTextLoader(Loader):
    """``jsonb`` as its text; the shared code parses it."""

    def load(self, data: Buffer) -> str:
        return bytes(data).decode("utf-8")


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_loader("timestamptz", _TimestampLoader)
    conn.adapters.register_loader("jsonb", _JSONTextLoader)
    watch_warnings(conn)


@lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    assert "%" not in sql, "a literal % in shared SQL"
    return sql.replace("?", "%s")


def _key_lock_id(key: str) -> int:
    """A signed 64-bit advisory lock id for an ``Idempotency-Key``."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


logger = logging.getLogger("birdbalance.storage")

#: Most keys one coalesced ``GET /balance`` query looks up.
MAX_LOOKUP_BATCH: Final = 256
#: Distinct keys waiting for a lookup query; more are refused with 503.
MAX_LOOKUPS_WAITING: Final = 4096
#: Coalesced lookup queries in flight at once per process (one connection each).
LOOKUP_CONNECTIONS: Final = 1
# One index lookup per key: with ``k.key_hash = ANY(%s)`` PostgreSQL either replans every
# query (0.4-0.7 ms of planning, more than the rest of the round trip) or, with a generic
# plan, hash-joins a sequential scan of api_keys. The lateral subquery (kept apart by
# OFFSET 0) has a generic plan of index scans, and the connection forces that plan.
_LOOKUP_MANY_SQL: Final = (
    "SELECT w.h, l.* FROM unnest(%s::bytea[]) AS w(h) CROSS JOIN LATERAL (SELECT "  # noqa: S608 -- constants only
    + LOOKUP_COLUMNS
    + LOOKUP_FROM
    + " = w.h"
    + LOOKUP_UNEXPIRED.replace("?", "%s")
    + " OFFSET 0) AS l"
)


class CoalescedLookups:
    """``GET /balance`` on PostgreSQL: lookups that arrive together share one query.

    Each lookup joins the next query to start, never one already in flight, so its answer
    reflects every commit made before the request arrived. While a query is out, new
    lookups gather; when it returns, they all go in the next one (one round trip for up
    to :data:`MAX_LOOKUP_BATCH` requests). Runs on the event loop, on its own
    :data:`LOOKUP_CONNECTIONS` async connections, so a slow or unreachable database
    never blocks the loop: a lookup waits at most ``timeout_s``, then gets a 503.
    """

    def __init__(self, url: str, options: str, timeout_s: float) -> None:
        self._url = url
        self._options = options
        self._timeout_s = timeout_s
        self._pending: dict[bytes, list[asyncio.Future[BalanceView | None]]] = {}
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def lookup(self, key_hash: bytes) -> BalanceView | None:
        """The ledger a live key reads (None for an unknown or revoked key)."""
        if len(self._pending) >= MAX_LOOKUPS_WAITING:
            raise ServiceUnavailable("too many balance lookups waiting, try again")
        future: asyncio.Future[BalanceView | None] = asyncio.get_running_loop().create_future()
        waiting = self._pending.get(key_hash)
        if waiting is None:
            self._pending[key_hash] = [future]
        else:
            waiting.append(future)
        if self._in_flight < LOOKUP_CONNECTIONS:
            self._start()
        return await future

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for conn in self._idle:
            await conn.close()
        self._idle.clear()

    def _start(self) -> None:
        if not self._pending:
            return
        keys = list(itertools.islice(self._pending, MAX_LOOKUP_BATCH))
        batch = {key: self._pending.pop(key) for key in keys}
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._query(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _query(self, batch: dict[bytes, list[asyncio.Future[BalanceView | None]]]) -> None:
        found: dict[bytes, BalanceView] = {}
        broken: dict[bytes, Exception] = {}
        failure: BaseException | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                conn = self._idle.pop() if self._idle else await self._connect()
                try:
                    now = utc_timestamp()
                    cursor = await conn.execute(_LOOKUP_MANY_SQL, (list(batch), now))
                    for row in await cursor.fetchall():
                        # One row that cannot be read fails its own key's lookup only.
                        try:
                            second = shared_lookup(row[1:], now)
                            if second is None:
                                found[bytes(row[0])] = balance_view(row[1:])
                                continue
                            # A shared sub-account's second read (rare: in its own trip).
                            shared = await conn.execute(second[0].replace("?", "%s"), second[1])
                            found[bytes(row[0])] = shared_view(row[1:], await shared.fetchone())
                        except (ValueError, TypeError) as exc:
                            broken[bytes(row[0])] = exc
                except BaseException:
                    await conn.close()  # its state is unknown: never reuse it
                    raise
                self._idle.append(conn)
        except (TimeoutError, psycopg.Error) as exc:
            failure = ServiceUnavailable(f"the database is unavailable, try again ({exc!r})")
        except BaseException as exc:  # noqa: BLE001 -- every waiter gets it, the loop goes on
            failure = exc
        finally:
            self._in_flight -= 1
            for key, futures in batch.items():
                for future in futures:
                    if future.done():
                        continue
                    if isinstance(failure, asyncio.CancelledError):
                        future.cancel()
                    elif failure is not None:
                        future.set_exception(failure)
                    elif key in broken:
                        logger.error("the ledger of a key cannot be read: %r", broken[key])
                        future.set_exception(InternalError())
                    else:
                        future.set_result(found.get(key))
            if not isinstance(failure, asyncio.CancelledError):
                self._start()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._url,
            autocommit=True,
            connect_timeout=max(1, round(self._timeout_s)),
            options=self._options + " -c plan_cache_mode=force_generic_plan",
            prepare_threshold=0,
            application_name="birdbalance-balance",
        )


class PostgresStore(SQLStore):
    """:class:`birdbalance.storage.Store` on PostgreSQL."""

    engine: ClassVar[str] = "postgresql"
    for_update: ClassVar[str] = " FOR UPDATE OF b"
    skip_locked: ClassVar[str] = " FOR UPDATE OF d SKIP LOCKED"
    _ENTRY_DAY_SQL: ClassVar[str] = "(created_at AT TIME ZONE 'UTC')::date"
    _METADATA_VALUE_SQL: ClassVar[str] = "(metadata ->> ?)"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        statement_timeout_ms: int = 5000,
    ) -> None:
        assert 2 <= pool_size <= 200
        self.url = url
        self._options = (
            f"-c TimeZone=UTC -c statement_timeout={int(statement_timeout_ms)}"
            f" -c lock_timeout={int(statement_timeout_ms)}"
        )
        self._timeout_s = pool_timeout_s
        # Writers get half the pool, so reads (GET /balance) always find a connection.
        self.max_concurrent_writes = max(1, pool_size // 2)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=pool_timeout_s,
            max_waiting=MAX_POOL_WAITING,
            reconnect_timeout=max(pool_timeout_s, 1.0),
            open=False,
            configure=_configure,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, round(connect_timeout_s)),
                "options": self._options,
                "application_name": "birdbalance",
            },
            name="birdbalance",
        )
        self._opened = False
        self._open_lock = threading.Lock()
        # The pipeline of each connection in a group commit (one writer thread each).
        self._pipelines: dict[psycopg.Connection[Any], psycopg.Pipeline] = {}
        self._clock_due = 0.0  # time.monotonic() of the next reading of the database's clock
        self._clock_lock = threading.Lock()
        self._clock_off = False
        # A write's statements are each bounded by statement_timeout, but its COMMIT's
        # wait for a synchronous standby is not: this bounds the whole transaction.
        self._commits = CommitWatch(deadline_s=2 * statement_timeout_ms / 1000)

    def balance_lookups(self) -> CoalescedLookups:
        """Coalesced async lookups for ``GET /balance``; make them on the serving loop."""
        return CoalescedLookups(self.url, self._options, self._timeout_s)

    def delivery_listener(self) -> DeliveryListener:
        """Wakes this process's deliverer when any process makes deliveries due."""
        return DeliveryListener(self.url, self._options, self._timeout_s)

    def _deliveries_due(self, conn: Connection) -> None:
        super()._deliveries_due(conn)
        # Sent at commit, and only then; several in one transaction are sent as one.
        self._execute(conn, "NOTIFY " + DELIVERIES_CHANNEL)

    # ------------------------------------------------------------------ connections

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if not self._opened:
            with self._open_lock:
                if not self._opened:
                    self._pool.open(wait=False)
                    self._opened = True
        try:
            with self._pool.connection() as conn:
                if time.monotonic() >= self._clock_due:
                    self._read_database_clock(conn)
                yield conn
        except (PoolTimeout, TooManyRequests) as exc:
            raise ServiceUnavailable("no database connection is free, try again") from exc
        except (psycopg.OperationalError, psycopg.errors.QueryCanceled) as exc:
            raise ServiceUnavailable(f"the database is unavailable, try again ({exc})") from exc

    def _read_database_clock(self, conn: psycopg.Connection[Any]) -> None:
        """Keep this process's stamps near the database's clock, which every node shares
        (see :mod:`birdbalance.timestamps`). Runs on the first connection taken (before
        anything is stamped) and then every ``REFERENCE_EVERY_S``, outside transactions."""
        if not self._clock_lock.acquire(blocking=False):
            return  # another thread is reading it right now
        try:
            before = time.monotonic()
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            after = time.monotonic()
            assert row is not None
            self._clock_due = after + REFERENCE_EVERY_S
            if after - before > MAX_REFERENCE_ROUND_TRIP_S:
                return  # too slow to say when it was read
            skew_s = follow_reference(float(row[0]), (before + after) / 2)
            off = abs(skew_s) > MAX_REFERENCE_SKEW_S
            if off != self._clock_off:
                self._clock_off = off
                if off:
                    logger.warning(
                        "this node's clock is %.1f s off the database's: stamping within"
                        " %.0f s of the database's clock instead",
                        skew_s,
                        MAX_REFERENCE_SKEW_S,
                    )
                else:
                    logger.warning("this node's clock agrees with the database's again")
        finally:
            self._clock_lock.release()

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection[Any]]:
        with self._connection() as conn:
            yield conn

    @contextmanager
    def _write(self, *, rollback: bool = False) -> Iterator[psycopg.Connection[Any]]:
        with (
            self._connection() as conn,
            self._commits.write(conn),
            conn.transaction(force_rollback=rollback),
        ):
            yield conn

    @contextmanager
    def _batch_write(self) -> Iterator[psycopg.Connection[Any]]:
        # Pipeline mode: BEGIN and the batch's four reads go in one round trip, its writes
        # in a second (when it reads the ledgers' row counts), COMMIT in a third, instead
        # of one per statement (nine for a batch of one, 0.2-0.3 ms each here). BEGIN and
        # COMMIT are statements because psycopg's transaction() block would sync the
        # pipeline on entry and on exit, two more round trips. If a statement fails, the
        # pipeline skips the rest (COMMIT too) and the pool's connection block rolls the
        # transaction back as the error leaves it.
        with (
            self._connection() as conn,
            self._commits.write(conn),
            conn.pipeline() as pipeline,
        ):
            self._pipelines[conn] = pipeline
            try:
                conn.execute("BEGIN")
                yield conn
                conn.execute("COMMIT")  # the pipeline's exit sends it and waits for it
            finally:
                del self._pipelines[conn]

    def _rowcount(self, conn: Any, cursor: Any) -> int:
        pipeline = self._pipelines.get(conn)
        if pipeline is not None and cursor.pgresult is None:
            pipeline.sync()  # a queued statement has no row count until its result is in
        return int(cursor.rowcount)

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Connection[Any]]:
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    def _execute(self, conn: Any, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        return conn.execute(_placeholders(sql), args)

    def _execute_many(self, conn: Any, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
        # psycopg pipelines executemany: one round trip for all the rows.
        with conn.cursor() as cursor:
            cursor.executemany(_placeholders(sql), rows)
            return int(cursor.rowcount)

    def _lock_key(self, conn: Any, key: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_key_lock_id(key),))

    def _lock_account(self, conn: Any, account_id: str) -> None:
        conn.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (account_id,))

    def _lock_keys(self, conn: Any, keys: Sequence[str]) -> None:
        # One round trip; unnest yields the array in order, so every batch (on every
        # node) takes its keys' locks in ascending order and batches cannot deadlock.
        ids = sorted({_key_lock_id(key) for key in keys})
        conn.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", (ids,))

    def close(self) -> None:
        with self._open_lock:
            self._commits.close()
            if self._opened:
                self._pool.close(timeout=5)
                self._opened = False

    # ------------------------------------------------------------------ schema

    def schema_version(self) -> tuple[int, int]:
        with self._read() as conn:
            return self._current_version(conn), self.latest_version()

    @staticmethod
    def _current_version(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return 0
        found = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
        assert found is not None
        return int(found[0])

    def migrate(self, target: int | None = None) -> list[str]:
        """Apply pending migrations (up to ``target``) in one transaction.

        An advisory lock makes nodes that start together apply them once. A schema
        already up to date is only read: a no-op ``migrate`` takes no lock.
        """
        with self._read() as conn:
            if not pending_migrations(self.engine, self._current_version(conn), target):
                return []
        applied = []
        # Not a watched _write: a migration may rightly outlast a request's deadline.
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _MIGRATION_LOCK)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
            )
            current = self._current_version(conn)
            for version, name, script in pending_migrations(self.engine, current, target):
                # No parameters: psycopg sends the script as one simple query.
                conn.execute(script.encode("utf-8"))
                self._after_migration(conn, version)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                    (version, name, utc_timestamp()),
                )
                applied.append(name)
        return applied
