"""``verify`` walks the ledgers in batches and pages (tiny ones here, so that every
boundary is crossed): it still finds each kind of damage wherever it sits, reports its
progress, holds no read transaction between batches (a checkpoint truncates the WAL in
the middle of it), and writes made while it runs are not mistaken for damage."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest

import birdbalance.storage.verify as verify_module
from birdbalance.ledger import EntryKind, Mode, Payment
from birdbalance.records import Idempotency, NewAccount, NewEntry
from birdbalance.settings import Settings
from birdbalance.storage import Store, open_store
from tests.databases import raw_execute

ACCOUNTS = 23


@pytest.fixture
def store(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setattr(verify_module, "VERIFY_BATCH_ACCOUNTS", 4)
    monkeypatch.setattr(verify_module, "VERIFY_PAGE_ENTRIES", 3)
    s = open_store(Settings(database_url=database_url))
    s.migrate()
    yield s
    s.close()


def _accounts(store: Store, entries: int = 5) -> list[str]:
    ids = []
    for n in range(ACCOUNTS):
        account = store.create_account(NewAccount(None, Payment.PREPAID, "EUR", 6, None, {}), None)
        for i in range(entries):
            new = NewEntry(account.id, Mode.LIVE, EntryKind.TOPUP, 10 + i, None, None, {})
            store.append_entry(new, Idempotency(f"{n}-{i}", f"fp-{n}-{i}"))
        ids.append(account.id)
    return ids


def test_a_clean_database_verifies_and_reports_progress(store: Store) -> None:
    _accounts(store)
    seen: list[tuple[int, int]] = []
    assert store.verify(lambda done, total: seen.append((done, total))) == []
    # One call per batch of 4 accounts, the last one (3 accounts) included.
    assert seen == [(min(4 * n, ACCOUNTS), ACCOUNTS) for n in range(1, 7)]


@pytest.mark.parametrize("position", [0, 9, ACCOUNTS - 1])
def test_damage_is_found_in_any_batch(store: Store, database_url: str, position: int) -> None:
    account = _accounts(store)[position]
    raw_execute(
        database_url,
        f"UPDATE balances SET balance_minor = balance_minor + 1 WHERE account_id = '{account}'"
        " AND mode = 'live'",
    )
    raw_execute(
        database_url,
        f"UPDATE daily_totals SET amount_minor = amount_minor + 1 WHERE account_id = '{account}'",
    )
    problems = store.verify()
    assert any(p.startswith(f"{account} live: stored balance") for p in problems), problems
    assert any("wrong in daily_totals" in p for p in problems), problems
    assert all(account in p for p in problems if p.startswith("acc_")), problems


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_checkpoint_truncates_the_wal_between_batches(store: Store, database_url: str) -> None:
    _accounts(store)
    path = database_url.removeprefix("sqlite:///")
    raw_execute(database_url, "CREATE TABLE probe (n INTEGER)")
    outcomes: list[tuple[int, int, int]] = []

    def checkpoint(done: int, total: int) -> None:
        other = sqlite3.connect(path)
        try:
            other.execute("INSERT INTO probe VALUES (?)", (done,))
            other.commit()
            outcomes.append(other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
        finally:
            other.close()

    assert store.verify(checkpoint) == []
    # (busy, frames in the WAL, frames checkpointed): never blocked by verify's reads.
    assert outcomes and all(outcome == (0, 0, 0) for outcome in outcomes), outcomes


def test_writes_while_it_runs_are_not_damage(store: Store, database_url: str) -> None:
    ids = _accounts(store, entries=2)
    writer = open_store(Settings(database_url=database_url))
    stop = threading.Event()
    written = []

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            account = ids[n % len(ids)]
            new = NewEntry(account, Mode.LIVE, EntryKind.CHARGE, 1, None, None, {})
            writer.append_entry(new, Idempotency(f"w{n}", f"fp-w{n}"))
            written.append(n)
            if n % 7 == 0:  # new accounts too, some of them inside batches already read
                writer.create_account(NewAccount(None, Payment.PREPAID, "EUR", 6, None, {}), None)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        runs = 0
        deadline = time.monotonic() + 30
        while (runs < 3 or len(written) < 30) and time.monotonic() < deadline:
            assert store.verify() == []
            runs += 1
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert len(written) > 20
    assert store.verify() == []


def test_problems_past_the_cap_are_counted_by_a_last_line(
    store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first MAX_PROBLEMS problems, then one line saying there are more, whether the
    overflow is inside one batch or in a later one."""
    ids = _accounts(store)
    raw_execute(
        database_url, "UPDATE balances SET balance_minor = balance_minor + 1 WHERE mode = 'live'"
    )
    # Two problems per account (the last entry, the sum), 23 accounts in 6 batches.
    monkeypatch.setattr(verify_module, "MAX_PROBLEMS", 3)  # overflows inside the first batch
    problems = store.verify()
    assert len(problems) == 4 and problems[-1].startswith("… and more problems"), problems
    assert all(p.startswith("acc_") for p in problems[:3]), problems
    monkeypatch.setattr(verify_module, "MAX_PROBLEMS", 2 * len(ids))  # exactly all of them
    assert len(store.verify()) == 2 * len(ids)
    monkeypatch.setattr(verify_module, "MAX_PROBLEMS", 2 * len(ids) - 1)  # the last batch's
    assert store.verify()[-1].startswith("… and more problems")
