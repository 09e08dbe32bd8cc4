"""The dashboard on a big account: server time of each page with 1,000,000 entries.

    .venv/bin/python bench/dashboard.py [--entries 1000000] [--engine sqlite|postgresql|both]
    .venv/bin/python bench/dashboard.py --write-cost     # what the per-day totals cost writes

Fills one account's live ledger straight through SQL (a top-up then nine charges, over
the last 120 days, ending now), so the per-day totals trigger runs for every entry as it
would in service. Then starts ``birdbalance serve`` on it, signs in with the account's key
as a browser does, and requests each dashboard page REQUESTS times: the server's own time
(its ``Server-Timing`` header: from reading the session to the rendered page; for the
statement download, to its first rows, which are sent while the rest is read) and the
whole request on loopback. The target (issue 6) is a server time under 300 ms.

``--write-cost`` times group commits of 16 charges in process (SQLite, synchronous=NORMAL,
so the CPU shows rather than the disk), with and without the trigger and the two filter
indexes. Prints tables; writes nothing but throwaway databases, removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.databases import raw_execute, scratch_database  # noqa: E402
from tests.servers import Server  # noqa: E402

from birdbalance.key_secret import key_hasher  # noqa: E402
from birdbalance.ledger import EntryKind, Mode, Payment  # noqa: E402
from birdbalance.records import Idempotency, NewAccount, NewEntry  # noqa: E402
from birdbalance.settings import Settings  # noqa: E402
from birdbalance.storage import open_store  # noqa: E402

ACCOUNT = "acc_01JDB3NCHMARK0000000000000"
KEY = "BenchDashboardKey00000000"
REQUESTS = 30
SPAN_DAYS = 120


def _fill(url: str, entries: int) -> None:
    """``entries`` entries: every tenth (from the first) a top-up of 100, the rest charges
    of 10 with a reference; balance after entry i is 110 * topups - 10 * i."""
    now = time.time()
    start = now - SPAN_DAYS * 86400
    step_s = SPAN_DAYS * 86400 / entries
    raw_execute(
        url,
        "INSERT INTO accounts (id, name, payment, asset, scale, credit_limit_minor, metadata,"
        f" created_at) VALUES ('{ACCOUNT}', 'Big account', 'prepaid', 'EUR', 2, NULL,"
        " '{}', '2020-01-01T00:00:00.000000Z')",
    )
    # Entry ids with a letter ('ent_D…'): bench/fixtures.py's are all digits, so both
    # can fill one database.
    if url.startswith("sqlite:"):
        sql = (
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {entries})"
            " INSERT INTO entries (id, account_id, mode, seq, kind, amount_minor,"
            " balance_after_minor, reference, metadata, created_at)"
            " SELECT 'ent_D' || printf('%025d', i), ?, 'live', i,"
            " CASE WHEN i % 10 = 1 THEN 'topup' ELSE 'charge' END,"
            " CASE WHEN i % 10 = 1 THEN 100 ELSE -10 END,"
            " 110 * ((i - 1) / 10 + 1) - 10 * i,"
            " CASE WHEN i % 10 = 1 THEN NULL ELSE 'msg-' || i END, '{}',"
            " strftime('%Y-%m-%dT%H:%M:%f000Z', ? + i * ?, 'unixepoch') FROM n"
        )
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(sql, (ACCOUNT, start, step_s))
        conn.close()
    else:
        sql = (
            "INSERT INTO entries (id, account_id, mode, seq, kind, amount_minor,"
            " balance_after_minor, reference, metadata, created_at)"
            " SELECT 'ent_D' || lpad(i::text, 25, '0'), %s, 'live', i,"
            " CASE WHEN i %% 10 = 1 THEN 'topup' ELSE 'charge' END,"
            " CASE WHEN i %% 10 = 1 THEN 100 ELSE -10 END,"
            " 110 * ((i - 1) / 10 + 1) - 10 * i,"
            " CASE WHEN i %% 10 = 1 THEN NULL ELSE 'msg-' || i END, '{}',"
            " to_timestamp(%s + i * %s) FROM generate_series(1, %s) AS i"
        )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql, (ACCOUNT, start, step_s, entries))
    topups = (entries - 1) // 10 + 1
    balance = 110 * topups - 10 * entries
    raw_execute(
        url,
        "INSERT INTO balances (account_id, mode, balance_minor, seq, held_minor, last_entry_at)"
        f" VALUES ('{ACCOUNT}', 'live', {balance}, {entries}, 0, NULL),"
        f" ('{ACCOUNT}', 'test', 0, 0, 0, NULL)",
    )
    raw_execute(
        url,
        "INSERT INTO api_keys (id, account_id, mode, key_hash, hint, created_at)"
        f" VALUES ('key_01JDB3NCHMARK0000000000000', '{ACCOUNT}', 'live',"
        f" {_bytes_literal(url, key_hasher(Settings(database_url=url)).digest(KEY))}, '…0000',"
        " '2020-01-01T00:00:00.000000Z')",
    )
    if not url.startswith("sqlite:"):
        raw_execute(url, "ANALYZE")


def _bytes_literal(url: str, value: bytes) -> str:
    return f"X'{value.hex()}'" if url.startswith("sqlite:") else f"'\\x{value.hex()}'::bytea"


def signed_in(base: str, credential: str = KEY) -> httpx.Client:
    """A client signed in to the dashboard as a browser is (the form's CSRF token)."""
    client = httpx.Client(base_url=base, timeout=60)
    form = client.get("/dashboard/sign-in").text
    match = re.search(r'name="csrf" value="([^"]+)"', form)
    assert match is not None
    r = client.post(
        "/dashboard/sign-in",
        data={"credential": credential, "csrf": match[1]},
        headers={"Origin": base},
    )
    assert r.status_code == 303, r.text
    return client


def _pages(entries: int) -> list[tuple[str, str]]:
    middle_day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - SPAN_DAYS * 86400 / 2))
    page = f"/dashboard/accounts/{ACCOUNT}"
    return [
        ("account, 30 days, newest entries", page),
        ("90 days", f"{page}?days=90"),
        ("entries from the middle (cursor)", f"{page}?cursor={entries // 2}"),
        ("type = topup (10 %)", f"{page}?kind=topup"),
        ("type = charge (90 %, from the seq index)", f"{page}?kind=charge"),
        (f"one reference of {entries:,}", f"{page}?reference=msg-{entries // 2}"),
        ("one day (date range)", f"{page}?from={middle_day}&to={middle_day}"),
        ("one day, type = topup, deep", f"{page}?from={middle_day}&kind=topup&cursor=9"),
        (
            f"statement CSV, one day ({entries // SPAN_DAYS:,} entries, whole download)",
            f"{page}/statement.csv?from={middle_day}&to={middle_day}",
        ),
    ]


def measure(client: httpx.Client, path: str) -> tuple[list[float], list[float], int]:
    """A page's server times (``Server-Timing``), request times and size, REQUESTS times."""
    server_ms, total_ms = [], []
    size = 0
    client.get(path)  # warm: templates compiled, pages cached
    for _ in range(REQUESTS):
        started = time.perf_counter()
        r = client.get(path)
        total_ms.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        timing = re.search(r"dur=([0-9.]+)", r.headers.get("server-timing", ""))
        if timing is not None:
            server_ms.append(float(timing[1]))
        size = len(r.content)
    return server_ms, total_ms, size


def percentile(values: list[float], q: float) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(len(ordered) * q))]:.1f}"


def bench_pages(engine: str, entries: int) -> None:
    with scratch_database(engine, "bbbench_dash") as url:
        started = time.perf_counter()
        _fill(url, entries)
        filled_s = time.perf_counter() - started
        store = open_store(Settings(database_url=url))
        assert store.verify() == [], "the fixture must be a valid ledger"
        store.close()
        print(f"\n{engine}: {entries:,} entries filled in {filled_s:.0f} s (verify: ok)")
        print(
            "| page | server p50 ms | server p99 ms | request p50 ms | request p99 ms"
            " | bytes |\n|---|---|---|---|---|---|"
        )
        server = Server(db_url=url, log_path=Path(os.devnull)).start()
        try:
            client = signed_in(server.url)
            try:
                for title, path in _pages(entries):
                    server_ms, total_ms, size = measure(client, path)
                    print(
                        f"| {title} | {percentile(server_ms, 0.5)} | {percentile(server_ms, 0.99)}"
                        f" | {statistics.median(total_ms):.1f} | {percentile(total_ms, 0.99)}"
                        f" | {size:,} |"
                    )
            finally:
                client.close()
        finally:
            server.stop()


def _writes_per_s(drop: str, batches: int = 400) -> float:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/w.db"
        store = open_store(Settings(database_url=url, sqlite_synchronous="NORMAL"))
        store.migrate()
        if drop:
            conn = sqlite3.connect(f"{folder}/w.db")
            conn.executescript(drop)
            conn.close()
        account = store.create_account(NewAccount(None, Payment.PREPAID, "EUR", 6, None, {}), None)
        topup = NewEntry(account.id, Mode.LIVE, EntryKind.TOPUP, 10**12, None, None, {})
        store.append_entry(topup, Idempotency("topup", "f"))
        started = time.perf_counter()
        for b in range(batches):
            store.append_entries(
                [
                    (
                        NewEntry(account.id, Mode.LIVE, EntryKind.CHARGE, 1, None, f"m{b}-{i}", {}),
                        Idempotency(f"k{b}-{i}", "f"),
                    )
                    for i in range(16)
                ]
            )
        rate = batches * 16 / (time.perf_counter() - started)
        store.close()
        return rate


def bench_write_cost() -> None:
    variants = {
        "without trigger and filter indexes": "DROP TRIGGER entries_daily_totals;"
        " DROP INDEX entries_kind; DROP INDEX entries_reference;",
        "with the trigger only": "DROP INDEX entries_kind; DROP INDEX entries_reference;",
        "with the filter indexes only": "DROP TRIGGER entries_daily_totals;",
        "as shipped (both)": "",
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(5):  # interleaved, so drift hits every variant alike
        for name, drop in variants.items():
            rates[name].append(_writes_per_s(drop))
    print("\n| SQLite group commits of 16, in process | charges/s (median of 5) |\n|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--write-cost", action="store_true")
    options = parser.parse_args()
    if options.write_cost:
        bench_write_cost()
        return
    engines = ["sqlite", "postgresql"] if options.engine == "both" else [options.engine]
    for engine in engines:
        bench_pages(engine, options.entries)


if __name__ == "__main__":
    main()
