"""The benchmarks' fixtures can fill one database together (bench/fixtures.py's accounts
and bench/dashboard.py's big account once collided on entry ids), and what they build
is a ledger that ``verify`` accepts."""

from __future__ import annotations

from bench import dashboard
from bench.fixtures import Fixture, build

from birdbalance.settings import Settings
from birdbalance.storage import open_store


def test_both_fixtures_fill_one_database(database_url: str) -> None:
    build(Fixture(database_url, 40, 3), progress=False)
    dashboard._fill(database_url, 250)
    store = open_store(Settings(database_url=database_url))
    try:
        assert store.count_accounts() == 41
        assert store.verify() == []
        assert len(store.list_accounts(None, 50, "Customer 39").items) == 1
    finally:
        store.close()
