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

TEST_SECRET = b"s" * 32


@pytest.fixture
def store(postgres: PostgresCluster) -> Iterator[PostgresStore]:
    s = open_store(Settings(database_url=postgres.new_database()))
    assert isinstance(s, PostgresStore)
    s.migrate()
    yield s
    s.close()


def _account(store: PostgresStore, n: int) -> str:
    account = store.create_account(NewAccount(None, Payment.PREPAID, "EUR", 2, None, {}), None).id
    store.create_key(NewKey(account, Mode.LIVE, hash_key(f"{n:025d}", TEST_SECRET), "…"), None)
    top = NewEntry(account, Mode.LIVE, EntryKind.TOPUP, 100 + n, None, None, {})
    store.append_entry(top, Idempotency(f"top-{n}", "fp"))
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
            digests = [hash_key(f"{n % 25:025d}", TEST_SECRET) for n in range(600)]
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
    digest = hash_key(f"{1:025d}", TEST_SECRET)

    async def main() -> list[int | None]:
        seen = []
        try:
            for n in range(30):
                charge = NewEntry(account, Mode.LIVE, EntryKind.CHARGE, 1, None, None, {})
                await asyncio.to_thread(store.append_entry, charge, Idempotency(f"c{n}", "fp"))
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


def test_the_coalesced_query_is_planned_once_as_index_seeks(store: PostgresStore) -> None:
    """A generic plan, so no per-query planning, and one made of index seeks only."""
    for n in range(300):  # enough rows that a bad plan would be a scan
        _account(store, n)
    import psycopg

    from birdbalance.storage.postgres import _LOOKUP_MANY_SQL

    with psycopg.connect(store.url, autocommit=True) as pg:
        pg.execute("ANALYZE")
        pg.execute("SET plan_cache_mode = force_generic_plan")
        numbered = _LOOKUP_MANY_SQL.replace("%s", "$1", 1).replace("%s", "$2", 1)
        pg.execute("PREPARE lookup(bytea[], timestamptz) AS " + numbered)
        # EXECUTE takes no bound parameters: the client cursor inlines the array.
        row = (
            psycopg.ClientCursor(pg)
            .execute(
                "EXPLAIN (FORMAT JSON) EXECUTE lookup(%s, %s)",
                ([hash_key(f"{n:025d}", TEST_SECRET) for n in range(3)], "2026-01-01T00:00:00Z"),
            )
            .fetchone()
        )
    assert row is not None
    text = str(row[0])
    assert "Seq Scan" not in text and "Hash" not in text, text
    for index in ("api_keys_key_hash_key", "balances_pkey", "accounts_pkey"):
        assert index in text, text

    async def settings() -> str:
        lookups = store.balance_lookups()
        try:
            conn = await lookups._connect()
            cursor = await conn.execute("SHOW plan_cache_mode")
            found = await cursor.fetchone()
            await conn.close()
            assert found is not None
            return str(found[0])
        finally:
            await lookups.close()

    assert asyncio.run(settings()) == "force_generic_plan"


def test_one_damaged_ledger_never_fails_the_lookups_it_shares_a_query_with(
    store: PostgresStore, postgres: PostgresCluster
) -> None:
    """A row tampered with outside birdbalance (balance less held past 64 bits, a payment
    no version writes) fails its own key's lookup, never its batch's other keys'."""
    accounts = [_account(store, n) for n in range(6)]
    with store._write() as conn:
        conn.execute(
            "UPDATE balances SET balance_minor = -9223372036854775807, held_minor = 10"
            " WHERE account_id = %s",
            (accounts[0],),
        )
    lookups = store.balance_lookups()

    async def main() -> list[object]:
        try:
            digests = [hash_key(f"{n % 6:025d}", TEST_SECRET) for n in range(120)]
            return await asyncio.gather(
                *(lookups.lookup(d) for d in digests), return_exceptions=True
            )
        finally:
            await lookups.close()

    found = asyncio.run(main())
    healthy = [f for n, f in enumerate(found) if n % 6 != 0]
    assert all(getattr(f, "balance_minor", None) is not None for f in healthy), healthy[:3]
    # The damaged one is read exactly (Python integers), not refused by an overflow.
    assert {getattr(f, "balance_minor", None) for n, f in enumerate(found) if n % 6 == 0} == {
        -9223372036854775807 - 10
    }
