"""The write queue on a real store: group commit, isolation of failures, limits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from birdbalance.errors import NotEnoughBalance, ServiceUnavailable
from birdbalance.ledger import EntryKind, Mode, Payment
from birdbalance.records import Idempotency, NewAccount, NewEntry
from birdbalance.runtime.writes import WriteQueue
from birdbalance.settings import Settings
from birdbalance.storage import Store, open_store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(Settings(database_url=database_url))
    s.migrate()
    yield s
    s.close()


def _charge(account: str, n: int, amount: int = 1) -> tuple[NewEntry, Idempotency]:
    new = NewEntry(account, Mode.LIVE, EntryKind.CHARGE, amount, None, None, {})
    return new, Idempotency(f"charge-{n}", f"fp-{n}")


def _funded(store: Store, amount: int) -> str:
    account = store.create_account(NewAccount(None, Payment.PREPAID, "EUR", 6, None, {}), None).id
    top = NewEntry(account, Mode.LIVE, EntryKind.TOPUP, amount, None, None, {})
    store.append_entry(top, Idempotency(f"top-{account}", "fp"))
    return account


def test_concurrent_entries_share_commits_and_keep_their_answers(store: Store) -> None:
    account = _funded(store, 250)
    queue = WriteQueue(store, store.max_concurrent_writes)

    async def main() -> list[Any]:
        jobs = [queue.submit_entry(*_charge(account, n)) for n in range(300)]
        return await asyncio.gather(*jobs, return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        queue.close()
    # Each answer: the entry (or its error), and whether an audit record committed with it.
    assert all(audited is False for _, audited in results)
    answers = [answer for answer, _ in results]
    posted = [r for r in answers if not isinstance(r, BaseException)]
    refused = [r for r in answers if isinstance(r, BaseException)]
    assert len(posted) == 250 and all(isinstance(r, NotEnoughBalance) for r in refused)
    # Every balance from 249 down to 0 was the answer of exactly one charge.
    assert sorted(p.entry.balance_after_minor for p in posted) == list(range(250))
    assert sum(size * n for size, n in queue.batch_sizes.items()) == 300
    assert max(queue.batch_sizes) > 1, queue.batch_sizes
    assert store.get_account(account).live.balance_minor == 0
    assert store.verify() == []


class _FailsInBatches:
    """A store whose group commits fail (as a database bug would); alone it works."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.batches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def append_entries(self, batch: Sequence[tuple[NewEntry, Idempotency]]) -> list[Any]:
        if len(batch) > 1:
            self.batches += 1
            raise RuntimeError("planted failure")
        return self.store.append_entries(batch)


def test_a_failing_batch_is_retried_one_entry_at_a_time(store: Store) -> None:
    account = _funded(store, 1000)
    failing = _FailsInBatches(store)
    queue = WriteQueue(failing, 1)  # type: ignore[arg-type]

    async def main() -> list[Any]:
        return await asyncio.gather(*(queue.submit_entry(*_charge(account, n)) for n in range(100)))

    try:
        results = asyncio.run(main())
    finally:
        queue.close()
    assert failing.batches > 0
    assert sorted(r.entry.balance_after_minor for r, _ in results) == list(range(900, 1000))
    assert store.verify() == []


def test_the_queue_is_bounded_and_close_finishes_what_it_holds(store: Store) -> None:
    account = _funded(store, 1000)
    queue = WriteQueue(store, 1, max_pending=4)
    gate = threading.Event()

    async def main() -> list[Any]:
        blocker = asyncio.ensure_future(queue.call(gate.wait))
        queued = [asyncio.ensure_future(queue.submit_entry(*_charge(account, n))) for n in range(3)]
        await asyncio.sleep(0.05)
        with pytest.raises(ServiceUnavailable):
            await queue.submit_entry(*_charge(account, 99))
        gate.set()
        return await asyncio.gather(blocker, *queued)

    try:
        results = asyncio.run(main())
    finally:
        queue.close()
    assert results[0] is True and len(results) == 4
    assert store.get_account(account).live.balance_minor == 997
