"""``GET /balance`` on PostgreSQL: coalesced async lookups on a real database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from birdbalance.errors import ServiceUnavailable
from birdbalance.keys import hash_key
from birdbalance.ledger import EntryKind, Mode, Payment
from birdbalance.records import Idempotency, NewAccount, NewEntry, NewKey
from birdbalance.settings import Settings
from birdbalance.storage import open_store
from birdbalance.storage.postgres import MAX_LOOKUP_BATCH, CoalescedLookups, PostgresStore
from tests.databases import PostgresCluster


@pytest.fixture
def store(postgres: PostgresCluster) -> Iterator[PostgresStore]:
    s = open_store(Settings(database_url=postgres.new_database()))
    assert isinstance(s, PostgresStore)
    s.migrate()
    yield s
    s.close()


def _account(store: PostgresStore, n: int) -> str:
    account = store.create_account(NewAccount(None, Payment.PREPAID, "EUR", 2, None, {}), None).id
    store.create_key(NewKey(account, Mode.LIVE, hash_key(f"{n:025d}"), "…"), None)
    top = NewEntry(account, Mode.LIVE, EntryKind.TOPUP, 100 + n, None, None, {})
    store.post_entry(top, Idempotency(f"top-{n}", "fp"))
    return account


def test_lookups_that_arrive_together_share_queries(store: PostgresStore) -> None:
    accounts = [_account(store, n) for n in range(20)]
    lookups = store.balance_lookups()
    queries = 0
    query = lookups._query

    async def counted(batch):  # type: ignore[no-untyped-def]
        nonlocal queries
        queries += 1
        await query(batch)

    lookups._query = counted  # type: ignore[method-assign]

    async def main() -> list[object]:
        try:
            # 600 requests: every key many times, plus unknown keys.
            digests = [hash_key(f"{n % 25:025d}") for n in range(600)]
            return await asyncio.gather(*(lookups.lookup(d) for d in digests))
        finally:
            await lookups.close()

    views = asyncio.run(main())
    for n, view in enumerate(views):
        if n % 25 < 20:
            assert view is not None and view.balance_minor == 100 + n % 25
        else:
            assert view is None
    assert queries < 20, queries  # far fewer queries than requests
    assert MAX_LOOKUP_BATCH >= 25
    assert accounts


def test_a_lookup_sees_every_commit_made_before_it(store: PostgresStore) -> None:
    account = _account(store, 1)
    lookups = store.balance_lookups()
    digest = hash_key(f"{1:025d}")

    async def main() -> list[int | None]:
        seen = []
        try:
            for n in range(30):
                charge = NewEntry(account, Mode.LIVE, EntryKind.CHARGE, 1, None, None, {})
                await asyncio.to_thread(store.post_entry, charge, Idempotency(f"c{n}", "fp"))
                view = await lookups.lookup(digest)
                seen.append(view.balance_minor if view else None)
            (key,) = store.list_keys(account)
            store.revoke_key(key.id)
            seen.append(await lookups.lookup(digest))  # type: ignore[arg-type]
        finally:
            await lookups.close()
        return seen

    assert asyncio.run(main()) == [*range(100, 70, -1), None]


def test_an_unreachable_database_answers_503_within_the_timeout() -> None:
    lookups = CoalescedLookups("postgresql://postgres@127.0.0.1:9/nothing", "", 1.0)

    async def main() -> float:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            await lookups.lookup(b"x" * 32)
        await lookups.close()
        return time.monotonic() - started

    assert asyncio.run(main()) < 3
