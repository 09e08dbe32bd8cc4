"""The SQLite engine: stdlib ``sqlite3``, WAL, one connection per thread.

Writes run in ``BEGIN IMMEDIATE`` transactions, which take SQLite's single write lock
up front: the ledger state read at the start of a write cannot change before its commit,
across threads and processes alike. ``synchronous=FULL`` by default, so an acknowledged
write survives power loss. Every query lives in :mod:`birdbalance.storage.sql`.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Final

from birdbalance.errors import ServiceUnavailable, SettingsError
from birdbalance.ids import utc_timestamp
from birdbalance.records import BalanceView
from birdbalance.settings import MAX_BALANCE_CACHE

from .credentials import LOOKUP_SQL, LOOKUP_WIDTH, balance_view, shared_lookup, shared_view
from .ledgers import MOVE_LEDGER_SQL
from .schema import pending_migrations, statements
from .sql import SQLStore


def path_from_url(url: str) -> Path:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise SettingsError(f"a SQLite URL looks like sqlite:///path/to/file.db, not {url!r}")
    rest = url[len(prefix) :]
    if rest == ":memory:":
        raise SettingsError("in-memory SQLite is not supported: every thread needs the same file")
    return Path(rest)


#: The WAL-index header: two 48-byte copies at the start of the ``-shm`` file.
_WAL_INDEX_HEADER_BYTES: Final = 96
#: A cached ``GET /balance`` answer that no period ends (any commit still ends it).
_NEVER: Final = "9999-12-31T23:59:59.999999Z"


#: Pages a backup or restore copies per step (16 MiB at 4 KiB pages).
BACKUP_STEP_PAGES: Final = 4096
#: Called with (pages copied, pages in all).
PageProgress = Callable[[int, int], None]


def _pages(progress: PageProgress | None) -> Callable[[int, int, int], None] | None:
    if progress is None:
        return None
    return lambda _status, remaining, total: progress(total - remaining, total)


#: The schema version that adds transfers, and the CHECK constraints it loosens: each
#: table's constraint text as created, and as it becomes.
TRANSFERS_VERSION: Final = 12
TRANSFER_CHECKS: Final = (
    (
        "entries",
        "CHECK (kind IN ('topup', 'charge', 'refund', 'adjustment'))",
        "CHECK (kind IN ('topup', 'charge', 'refund', 'adjustment', 'transfer'))",
    ),
    (
        "idempotency_keys",
        "CHECK (resource_type IN ('account', 'key', 'entry', 'hold'))",
        "CHECK (resource_type IN ('account', 'key', 'entry', 'hold', 'transfer'))",
    ),
)

#: The schema version that gives every admin write an idempotency key, and the resources
#: it adds to what a key answers for.
ADMIN_KEYS_VERSION: Final = 16
ADMIN_KEY_CHECKS: Final = (
    (
        "idempotency_keys",
        # As version 12 left it.
        TRANSFER_CHECKS[1][2],
        "CHECK (resource_type IN ('account', 'key', 'entry', 'hold', 'transfer', 'alert',"
        " 'webhook', 'delivery'))",
    ),
)


def _loosen_checks(conn: sqlite3.Connection, checks: Sequence[tuple[str, str, str]]) -> None:
    """Admit more values in CHECK constraints without rebuilding their tables.

    SQLite cannot alter a constraint. Its documentation ("Making Other Kinds Of Table
    Schema Changes") allows editing the stored CREATE TABLE text in place for a change
    that every existing row still satisfies, such as a CHECK that admits more: edit it
    with ``writable_schema``, then bump ``schema_version`` so every connection reloads
    the schema. Runs inside the migration's transaction.
    """
    (version,) = conn.execute("PRAGMA schema_version").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    try:
        for table, old, new in checks:
            changed = conn.execute(
                "UPDATE sqlite_schema SET sql = replace(sql, ?, ?)"
                " WHERE type = 'table' AND name = ? AND instr(sql, ?) > 0",
                (old, new, table, old),
            ).rowcount
            assert changed == 1, f"{table}'s CHECK is not the one expected: {old}"
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")


class CommitStamp:
    """A stamp that changes whenever any connection commits to a WAL database.

    In WAL mode SQLite keeps a shared-memory index of the log in ``<database>-shm``, which
    every connection maps. Its header (https://www.sqlite.org/walformat.html, "The
    WAL-Index Header") holds a change counter, the last valid frame and checksums, and
    every commit rewrites it before the commit becomes visible to readers. Reading that
    header from our own read-only mapping is a memory read, with no system call and
    without releasing the GIL, which is what makes a cached ``GET /balance`` cheap. A
    checkpoint or recovery rewrites the header too; that only costs a cache miss.
    """

    #: Descriptors that could not be mapped, never closed (see :meth:`open`).
    _unusable: ClassVar[list[int]] = []

    def __init__(self, fd: int, mapped: mmap.mmap) -> None:
        self._fd = fd
        self._map = mapped

    @classmethod
    def open(cls, database: Path) -> CommitStamp | None:
        """The stamp of ``database`` (open in WAL mode), or None if it cannot be mapped.

        The descriptors stay open until :meth:`close`, which must come after the process's
        SQLite connections are closed: POSIX drops *all* of a process's fcntl locks on a
        file when *any* descriptor of it is closed, and SQLite holds a lock on ``-shm``
        that tells other processes the file is in use. Losing it lets the next process
        that opens the database truncate the file under our connections (SIGBUS).
        """
        try:
            fd = os.open(f"{database}-shm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size >= _WAL_INDEX_HEADER_BYTES:
                return cls(fd, mmap.mmap(fd, _WAL_INDEX_HEADER_BYTES, access=mmap.ACCESS_READ))
        except OSError:
            pass
        # Unusable, but closing it would drop SQLite's lock: keep it for the process's life.
        cls._unusable.append(fd)
        return None

    def stamp(self) -> bytes:
        return self._map[:_WAL_INDEX_HEADER_BYTES]

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


#: SQLite's primary result codes of a write that may succeed when tried again later.
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_SQLITE_IOERR: Final = 10
_SQLITE_FULL: Final = 13
#: Seconds a client is told to wait after a full disk (space is freed by a person, or
#: by a checkpoint: not within a second).
FULL_DISK_RETRY_S: Final = 5


def _retryable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 a failed write deserves, or None when it is not a passing condition.

    A full disk (or a write the disk refused) or a lock held too long rolls the write
    back whole; it will succeed once space is freed or the lock is let go, with no
    restart, so the client is told to retry (with the same ``Idempotency-Key``).
    """
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in (_SQLITE_FULL, _SQLITE_IOERR):
        return ServiceUnavailable(
            "the database's disk is full or refused the write; nothing was written, try"
            " again later",
            retry_after_s=FULL_DISK_RETRY_S,
        )
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return ServiceUnavailable(f"the database is busy, try again ({exc})")
    return None


class SQLiteStore(SQLStore):
    """:class:`birdbalance.storage.Store` on a SQLite file."""

    engine: ClassVar[str] = "sqlite"
    # The FTS5 trigram index of names (migration 0011) finds the candidates.
    name_index: ClassVar[str | None] = (
        " AND a.rowid IN (SELECT rowid FROM account_names WHERE account_names MATCH ?)"
    )
    name_matches: ClassVar[str | None] = (
        "SELECT COUNT(*) FROM (SELECT rowid FROM account_names WHERE account_names MATCH ? LIMIT ?)"
    )

    def _kind_totals(
        self, conn: Any, where: str, args: tuple[Any, ...]
    ) -> list[tuple[str, int, int]]:
        try:
            return super()._kind_totals(conn, where, args)
        except sqlite3.OperationalError as exc:
            if "integer overflow" not in str(exc):
                raise
        # SQLite's SUM stops at 64 bits; a long statement of a busy ledger can pass them
        # (each day is bounded, a year of days is not). Rare: add up in Python, streamed.
        sums: dict[str, int] = {}
        counts: dict[str, int] = {}
        cursor = self._execute(
            conn,
            "SELECT kind, amount_minor FROM entries" + where,  # noqa: S608 -- constants only
            args,
        )
        for kind, amount_minor in cursor:
            sums[kind] = sums.get(kind, 0) + amount_minor
            counts[kind] = counts.get(kind, 0) + 1
        return [(kind, sums[kind], counts[kind]) for kind in sums]

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        read_only: bool = False,
    ):
        """``read_only``: open the file as it is, for reading (a backup being checked):
        no journal mode set, no ``-wal`` or ``-shm`` made beside a file without them."""
        self.path = path
        self._read_only = read_only
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._commits: CommitStamp | None = None
        self._cache_size = 0
        # Digest -> (commit stamp, answer, the key's expires_at).
        self._balances: dict[bytes, tuple[bytes, BalanceView, str | None, str]] = {}

    # ------------------------------------------------------------------ connections

    def _connect(self, path: Path) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, nothing implicit.
        conn = sqlite3.connect(
            f"file:{urllib.parse.quote(str(path))}?mode=ro" if self._read_only else path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self._busy_timeout_ms / 1000,
            uri=self._read_only,
        )
        if self._read_only:
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            return conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if not self._read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        yield self._conn()

    @contextmanager
    def _write(self, *, rollback: bool = False) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise ServiceUnavailable(f"the database is busy, try again ({exc})") from exc
        try:
            yield conn
            conn.execute("ROLLBACK" if rollback else "COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            unavailable = _retryable(exc)
            if unavailable is not None:
                raise unavailable from exc
            raise

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _execute(self, conn: Any, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        return conn.execute(sql, args)

    def _execute_many(self, conn: Any, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
        return int(conn.executemany(sql, rows).rowcount)

    def _move_ledgers(self, conn: Any, moves: Sequence[tuple[Any, ...]]) -> None:
        # One call for the batch: its row count is the sum of each row's, and each row
        # matches one ledger at most (its primary key), so the sum says each moved once.
        if moves:
            moved = self._execute_many(conn, MOVE_LEDGER_SQL, moves)
            assert moved == len(moves), "a ledger moved under its lock"

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
        # Only now: closing it drops the process's locks on -shm (see CommitStamp.open).
        if self._commits is not None:
            self._commits.close()
            self._commits = None
            self._balances.clear()

    # ------------------------------------------------------------------ hot path

    def lookup_balance(self, key_hash: bytes) -> BalanceView | None:
        """The one query of every ``GET /balance``, answered from memory while nothing changed.

        A cached answer is used only if the database's commit stamp is still the one read
        before that answer was queried, so an answer is never older than the last commit
        of any connection or process: a revoked key or a charge shows on the next request.
        """
        stamp = self._commits.stamp() if self._commits is not None else None
        now = utc_timestamp()
        cached = self._balances.get(key_hash)
        if cached is not None and stamp is not None and cached[0] == stamp and now < cached[3]:
            # A rotated key's end passes without a commit: check it on every hit too.
            if cached[2] is None or cached[2] > now:
                return cached[1]
            return None
        conn = self._conn()
        row = conn.execute(LOOKUP_SQL, (key_hash, now)).fetchone()
        if row is None:
            return None  # unknown keys are not cached: guessing cannot fill the cache
        second = shared_lookup(row, now)
        if second is None:
            view, good_until = balance_view(row), _NEVER
        else:
            # A spending limit's period ends without a commit: the answer holds till then.
            sql, args, good_until = second
            view = shared_view(row, conn.execute(sql, args).fetchone())
        if stamp is not None:
            if len(self._balances) >= self._cache_size:
                self._balances.clear()
            self._balances[key_hash] = (stamp, view, row[LOOKUP_WIDTH], good_until)
        return view

    def cache_balances(self, cache_size: int) -> bool:
        """Cache ``GET /balance`` answers (up to ``cache_size`` keys) behind the commit stamp.

        Call once the database exists. False (no cache) where the stamp cannot be read.
        """
        assert 0 <= cache_size <= MAX_BALANCE_CACHE
        self._conn().execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()
        self._cache_size = cache_size
        self._commits = CommitStamp.open(self.path) if cache_size else None
        return self._commits is not None

    # ------------------------------------------------------------------ schema

    def schema_version(self) -> tuple[int, int]:
        return self._current_version(self._conn()), self.latest_version()

    @staticmethod
    def _current_version(conn: sqlite3.Connection) -> int:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if exists is None:
            return 0
        return int(
            conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
        )

    def _after_migration(self, conn: Any, version: int) -> None:
        super()._after_migration(conn, version)
        if version == TRANSFERS_VERSION:
            _loosen_checks(conn, TRANSFER_CHECKS)
        elif version == ADMIN_KEYS_VERSION:
            _loosen_checks(conn, ADMIN_KEY_CHECKS)

    def migrate(self, target: int | None = None) -> list[str]:
        """Apply pending migrations (up to ``target``) in one transaction.

        A schema already up to date is read, never locked: a no-op ``migrate`` on a
        serving database takes no write lock (so no write waits on it) and checks
        nothing it did not change.
        """
        if not pending_migrations(self.engine, self._current_version(self._conn()), target):
            return []
        applied = []
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT"
            )
            current = self._current_version(conn)
            for version, name, script in pending_migrations(self.engine, current, target):
                for statement in statements(script, sqlite3.complete_statement):
                    conn.execute(statement)
                self._after_migration(conn, version)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, name, utc_timestamp()),
                )
                applied.append(name)
            problems = conn.execute("PRAGMA foreign_key_check").fetchall()
            assert not problems, f"a migration broke foreign keys: {problems[:5]}"
        return applied

    # ------------------------------------------------------------------ backup

    def counts(self) -> tuple[int, int]:
        """``(accounts, entries)`` in the database."""
        row = (
            self._conn()
            .execute("SELECT (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM entries)")
            .fetchone()
        )
        return int(row[0]), int(row[1])

    def backup(self, destination: Path, progress: PageProgress | None = None) -> None:
        """Copy the database to ``destination`` online, as one consistent snapshot.

        The copy goes in steps of :data:`BACKUP_STEP_PAGES` (``progress`` hears of each)
        inside one read transaction held on the source: in WAL mode writers go on
        meanwhile, the snapshot does not move, and the copy is exactly one committed
        state. (Steps without that transaction would restart whenever another process
        writes, and might never finish on a busy database.)
        """
        source = self._conn()
        target = sqlite3.connect(destination)
        try:
            source.execute("BEGIN")
            try:
                source.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()  # the snapshot
                source.backup(target, pages=BACKUP_STEP_PAGES, progress=_pages(progress))
            finally:
                source.execute("COMMIT")
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()

    def restore(self, source: Path, progress: PageProgress | None = None) -> None:
        """Replace the database's content with that of the backup file ``source``."""
        origin = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            origin.backup(self._conn(), pages=BACKUP_STEP_PAGES, progress=_pages(progress))
        finally:
            origin.close()
