"""Point-in-time balance lookups on a big ledger: latency with few vs millions of entries.

    .venv/bin/python bench/point_in_time.py [--entries 2000000] [--engine sqlite|postgresql|both]

Fills one account's ledger straight through SQL (entries one second apart), then times
``store.balance_at`` at random moments, in process, for a small and a big ledger. The
PostgreSQL database is a throwaway one on BIRDBALANCE_TEST_POSTGRES_URL's server, dropped
afterwards. Prints one line per engine and size; writes nothing else.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

from birdbalance.ledger import Mode
from birdbalance.settings import Settings
from birdbalance.storage import open_store

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.databases import raw_execute, scratch_database  # noqa: E402

LOOKUPS = 2000


def _fill(url: str, account: str, entries: int) -> None:
    raw_execute(
        url,
        "INSERT INTO accounts (id, name, payment, asset, scale, credit_limit_minor, metadata,"
        f" created_at) VALUES ('{account}', 'bench', 'prepaid', 'EUR', 6, NULL, '{{}}',"
        " '2020-01-01T00:00:00.000000Z')",
    )
    if url.startswith("sqlite:"):
        sql = (
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {entries})"
            " INSERT INTO entries (id, account_id, mode, seq, kind, amount_minor,"
            " balance_after_minor, metadata, created_at)"
            f" SELECT 'ent_{account[-1]}' || printf('%025d', i), '{account}', 'live', i,"
            " 'topup', 1, i, '{}',"
            " strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2020-01-01', '+' || i || ' seconds')"
            " FROM n"
        )
    else:
        sql = (
            "INSERT INTO entries (id, account_id, mode, seq, kind, amount_minor,"
            " balance_after_minor, metadata, created_at)"
            f" SELECT 'ent_{account[-1]}' || lpad(i::text, 25, '0'), '{account}', 'live', i,"
            " 'topup', 1, i, '{}', timestamptz '2020-01-01 00:00:00+00' + i * interval '1 second'"
            f" FROM generate_series(1, {entries}) AS i"
        )
    raw_execute(url, sql)
    for mode, n in (("live", entries), ("test", 0)):
        raw_execute(
            url,
            "INSERT INTO balances (account_id, mode, balance_minor, seq, held_minor)"
            f" VALUES ('{account}', '{mode}', {n}, {n}, 0)",
        )
    if not url.startswith("sqlite:"):
        raw_execute(url, "ANALYZE entries")


def _measure(url: str, account: str, entries: int) -> tuple[float, float]:
    store = open_store(Settings(database_url=url))
    rng = random.Random(7)
    samples = []
    try:
        for _ in range(LOOKUPS):
            second = rng.randrange(1, entries + 1)
            at = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(1577836800 + second))
            started = time.perf_counter()
            found = store.balance_at(account, Mode.LIVE, at)
            samples.append(time.perf_counter() - started)
            assert found.balance_minor == second, (found, second)
    finally:
        store.close()
    samples.sort()
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99)] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2_000_000)
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    options = parser.parse_args()
    engines = ["sqlite", "postgresql"] if options.engine == "both" else [options.engine]
    sizes = [1_000, options.entries]
    print(f"{'engine':<11} {'entries':>10} {'fill s':>7} {'p50 µs':>8} {'p99 µs':>8}")
    for engine in engines:
        with scratch_database(engine, "bbbench") as url:
            for i, entries in enumerate(sizes):
                account = f"acc_{i:026d}"
                started = time.perf_counter()
                _fill(url, account, entries)
                filled = time.perf_counter() - started
                p50, p99 = _measure(url, account, entries)
                print(f"{engine:<11} {entries:>10,} {filled:>7.1f} {p50:>8.0f} {p99:>8.0f}")


if __name__ == "__main__":
    main()
