"""Databases for tests: SQLite files and throwaway PostgreSQL databases.

Every PostgreSQL database a test run creates is named ``bbtest_<run>_<n>`` and dropped
when the run ends. In CI (``CI=true``) PostgreSQL is started if it is down and its tests
must run; elsewhere, without a reachable server, they skip with one line saying how to
enable them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

#: The server and maintenance database test databases are created from.
ADMIN_URL = os.environ.get(
    "BIRDBALANCE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ENGINES = ("sqlite", "postgresql")
#: Every migration, in order: the same versions on both engines.
MIGRATIONS = [
    "0001_initial.sql",
    "0002_holds.sql",
    "0003_alerts.sql",
    "0004_webhooks.sql",
    "0005_recharge.sql",
    "0006_dashboard.sql",
    "0007_security.sql",
    "0008_delivery_fairness.sql",
    "0009_day_turnover.sql",
    "0010_bulk.sql",
    "0011_account_search.sql",
    "0012_transfers.sql",
    "0013_subaccounts.sql",
    "0014_shared_balances.sql",
    "0015_scoped_tokens.sql",
    "0016_idempotent_admin_writes.sql",
]
LATEST = len(MIGRATIONS)
SKIP_REASON = (
    "PostgreSQL tests left out: no server at {url} ({error}); run scripts/postgres-up or "
    "set BIRDBALANCE_TEST_POSTGRES_URL (with CI=true they always run)"
)
START_COMMAND = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _url_for(database: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def _connect() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)


class PostgresCluster:
    """Creates and drops this run's throwaway databases."""

    def __init__(self) -> None:
        self.run = f"bbtest_{os.getpid()}_{secrets.token_hex(3)}"
        self._count = 0

    @staticmethod
    def reach() -> str | None:
        """None when the server answers; otherwise why not (after starting it in CI)."""
        try:
            _connect().close()
            return None
        except psycopg.OperationalError as exc:
            error = str(exc).strip().splitlines()[0]
        if not in_ci():
            return error
        subprocess.run(["bash", "-c", START_COMMAND], check=False, capture_output=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                _connect().close()
                return None
            except psycopg.OperationalError as exc:
                error = str(exc).strip().splitlines()[0]
                time.sleep(0.5)
        return error

    def new_database(self) -> str:
        self._count += 1
        name = f"{self.run}_{self._count}"
        with _connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return _url_for(name)

    def drop_all(self) -> None:
        """Drop this run's databases, in a process of its own that outlives the run: each
        DROP DATABASE waits for a checkpoint (about 0.1 s, hundreds of them a run), and
        nothing waits on their going."""
        # The shell starts it in the background and returns at once (so this run has no
        # child left running); it goes on by itself.
        subprocess.run(
            [
                "sh",
                "-c",
                '"$0" -c "$1" "$2" "$3" </dev/null >/dev/null 2>&1 &',
                *(sys.executable, _DROP_ALL, ADMIN_URL, self.run),
            ],
            check=True,
            start_new_session=True,
        )


_DROP_ALL = """
import sys, psycopg
url, run = sys.argv[1:]
with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
    like = run.replace("_", "\\_") + "\\_%"
    found = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,))
    for (name,) in found.fetchall():
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
"""


def raw_execute(database_url: str, sql: str) -> None:
    """Run ``sql`` behind birdbalance's back (to tamper, or to prove it cannot)."""
    if database_url.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()
        return
    with psycopg.connect(database_url, autocommit=True) as pg:
        pg.execute(sql.encode("utf-8"))


def fill_accounts(database_url: str, count: int) -> None:
    """``count`` prepaid accounts ``acc_000…1`` onwards, named ``Customer <n>``, each with
    its two ledgers, written straight into the database (a statement per table)."""
    if database_url.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
                " INSERT INTO accounts (id, name, payment, asset, scale, metadata, created_at)"
                " SELECT printf('acc_%026d', i), 'Customer ' || i, 'prepaid', 'EUR', 6, '{}',"
                " '2026-01-01T00:00:00.000000Z' FROM n",
                (count,),
            )
            conn.execute(
                "INSERT INTO balances (account_id, mode, balance_minor, seq)"
                " SELECT id, m.mode, 0, 0 FROM accounts, (SELECT 'live' AS mode UNION ALL"
                " SELECT 'test') AS m WHERE id LIKE 'acc_000%'"
            )
            conn.commit()
        finally:
            conn.close()
        return
    with psycopg.connect(database_url, autocommit=True) as pg:
        pg.execute(
            "INSERT INTO accounts (id, name, payment, asset, scale, metadata, created_at)"
            " SELECT 'acc_' || lpad(i::text, 26, '0'), 'Customer ' || i, 'prepaid', 'EUR', 6,"
            " '{}', '2026-01-01T00:00:00Z' FROM generate_series(1, %s) AS i",
            (count,),
        )
        pg.execute(
            "INSERT INTO balances (account_id, mode, balance_minor, seq)"
            " SELECT id, m.mode, 0, 0 FROM accounts, (VALUES ('live'), ('test')) AS m(mode)"
            " WHERE id LIKE 'acc_000%%'"
        )


#: What :func:`raw_execute` raises when a trigger refuses the statement.
REFUSED = (psycopg.errors.RaiseException, __import__("sqlite3").IntegrityError)


@contextlib.contextmanager
def scratch_database(engine: str, prefix: str) -> Iterator[str]:
    """A new database with birdbalance's schema, for a benchmark: a SQLite file in a
    temporary folder, or a database on ADMIN_URL's PostgreSQL server; removed afterwards."""
    from birdbalance.settings import Settings
    from birdbalance.storage import open_store

    with tempfile.TemporaryDirectory() as folder:
        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
        if engine == "sqlite":
            url = f"sqlite:///{folder}/{prefix}.db"
        else:
            with _connect() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = _url_for(name)
        try:
            store = open_store(Settings(database_url=url))
            store.migrate()
            store.close()
            yield url
        finally:
            if engine != "sqlite":
                with _connect() as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PrivateCluster:
    """A PostgreSQL server of one test's own (initdb in a temporary folder, a free port),
    to stop and start at will without touching the shared one."""

    def __init__(self, port: int) -> None:
        self.port = port
        # The server runs as the postgres user: its folder must be that user's.
        self.folder = Path(tempfile.mkdtemp(prefix="bbpg-", dir="/tmp"))
        self.data = self.folder / "data"
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        assert bins, "PostgreSQL's server binaries are not installed"
        self.bin = bins[-1].parent

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> PrivateCluster:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
