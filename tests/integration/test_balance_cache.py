"""The SQLite ``GET /balance`` cache: never older than the last commit of anyone."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from birdbalance.keys import hash_key
from birdbalance.ledger import EntryKind, Mode, Payment
from birdbalance.records import Idempotency, NewAccount, NewEntry, NewKey
from birdbalance.settings import Settings
from birdbalance.storage import Store, open_store
from birdbalance.storage.sqlite import CommitStamp, SQLiteStore
from tests.databases import sqlite_url

KEY = "K" * 25

TEST_SECRET = b"s" * 32


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "cache.db")


@pytest.fixture
def writer(url: str) -> Iterator[Store]:
    """Another connection to the same database (as another process's would be)."""
    store = open_store(Settings(database_url=url))
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def served(url: str, writer: Store) -> Iterator[SQLiteStore]:
    """The server's store, with the cache on."""
    store = open_store(Settings(database_url=url))
    assert isinstance(store, SQLiteStore)
    assert store.cache_balances(100)
    yield store
    store.close()


def _account(store: Store, key: str = KEY, amount: int = 1000) -> str:
    account = store.create_account(NewAccount(None, Payment.PREPAID, "EUR", 6, None, {}), None).id
    store.create_key(NewKey(account, Mode.LIVE, hash_key(key, TEST_SECRET), "…"), None)
    _entry(store, account, EntryKind.TOPUP, amount)
    return account


def _entry(store: Store, account: str, kind: EntryKind, amount: int) -> None:
    new = NewEntry(account, Mode.LIVE, kind, amount, None, None, {})
    key = f"k-{random.getrandbits(64)}"
    store.append_entry(new, Idempotency(key, key))


def _queries(store: SQLiteStore) -> list[str]:
    seen: list[str] = []
    store._conn().set_trace_callback(seen.append)
    return seen


def test_repeated_lookups_come_from_memory_until_anyone_commits(
    served: SQLiteStore, writer: Store, url: str
) -> None:
    account = _account(writer)
    queries = _queries(served)
    views = [served.lookup_balance(hash_key(KEY, TEST_SECRET)) for _ in range(50)]
    assert {v.balance_minor for v in views if v} == {1000} and len(queries) == 1
    _entry(writer, account, EntryKind.CHARGE, 1)  # another connection commits
    assert served.lookup_balance(hash_key(KEY, TEST_SECRET)).balance_minor == 999  # type: ignore[union-attr]
    # Another process commits (a CLI, another worker): seen on the very next lookup.
    script = (
        "from birdbalance.settings import Settings; from birdbalance.storage import open_store;"
        "from birdbalance.records import *; from birdbalance.ledger import *;"
        f"s = open_store(Settings(database_url={url!r}));"
        f"s.append_entry(NewEntry({account!r}, Mode.LIVE, EntryKind.CHARGE, 9, None, None, {{}}),"
        " Idempotency('other-process', 'fp'))"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert served.lookup_balance(hash_key(KEY, TEST_SECRET)).balance_minor == 990  # type: ignore[union-attr]
    # A revoked key stops working at once.
    (key,) = writer.list_keys(account)
    writer.revoke_key(key.id)
    assert served.lookup_balance(hash_key(KEY, TEST_SECRET)) is None
    assert len(queries) == 4


def test_the_cache_agrees_with_the_database_under_random_writes(
    served: SQLiteStore, writer: Store, url: str
) -> None:
    keys = [c * 25 for c in "ABCDE"]
    accounts = [_account(writer, key, 10_000) for key in keys]
    plain = open_store(Settings(database_url=url))
    direct = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    rng = random.Random(7)
    try:
        for _ in range(400):
            action = rng.random()
            n = rng.randrange(len(keys))
            if action < 0.3:
                _entry(rng.choice([writer, served]), accounts[n], EntryKind.CHARGE, 1)
            elif action < 0.35:
                direct.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the log starts over
            else:
                digest = hash_key(keys[n], TEST_SECRET)
                assert served.lookup_balance(digest) == plain.lookup_balance(digest)
    finally:
        direct.close()
        plain.close()


def test_the_cache_is_bounded_and_never_keeps_unknown_keys(
    served: SQLiteStore, writer: Store
) -> None:
    keys = [f"{n:025d}" for n in range(150)]
    for key in keys:
        _account(writer, key)
    for key in [*keys, *(f"{n:024d}x" for n in range(50))]:
        served.lookup_balance(hash_key(key, TEST_SECRET))
    assert 0 < len(served._balances) <= 100


def test_no_stamp_no_cache(tmp_path: Path) -> None:
    assert CommitStamp.open(tmp_path / "missing.db") is None
    store = open_store(Settings(database_url=sqlite_url(tmp_path / "off.db")))
    store.migrate()
    assert store.cache_balances(0) is False
    store.close()


def test_the_stamp_keeps_sqlites_locks(served: SQLiteStore, url: str) -> None:
    """Closing any descriptor of -shm drops all of a process's fcntl locks on it (POSIX).

    SQLite's unix VFS holds a read lock on byte 128 of -shm (its "DMS" lock) while a
    process uses the database; the next process to open it truncates and rebuilds -shm if
    it can take that byte exclusively, which crashes this process's connections (SIGBUS).
    """
    path = url.removeprefix("sqlite:///")
    assert (
        served.lookup_balance(hash_key(KEY, TEST_SECRET)) is None
    )  # connections open, stamp mapped
    script = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)\n"
        "except OSError:\n    sys.exit(0)\n"
        "sys.exit('nobody holds the DMS lock of ' + sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", script, path + "-shm"], check=True)
