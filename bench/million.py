"""What an operator runs every day, on a database of a million accounts.

    .venv/bin/python bench/million.py                          # both engines
    .venv/bin/python bench/million.py --engine sqlite --accounts 1000000 --entries 11

It builds (once, then reuses) a fixture of ``--accounts`` accounts with ``--entries``
entries each (``bench/.data/bench_million.db``, PostgreSQL database ``bench_million``;
about 9 minutes for a million accounts on SQLite), brings it to the current schema, and
times, warm:

- ``birdbalance verify`` (wall time and the process's peak RSS), and on SQLite the WAL's
  peak size while a writer posts charges during a second ``verify``;
- ``birdbalance backup`` and ``restore`` (SQLite), and that the source keeps its bytes;
- a no-op ``birdbalance migrate`` (wall time, and ``store.migrate()`` in process);
- account pages at the start, middle and end of the list;
- account search by exact id, by a rare name, by a common name, and by two letters;
- one account's statement with its totals.

Results: docs/performance.md#a-million-accounts-the-operators-paths-issue-18. The
fixture is left for the next run (``--rebuild`` starts over); ``GET /balance`` at this
size is ``bench/run scale``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.compare import DATA, VENV_BIN, fixture_url, recreate_database
from bench.fixtures import Fixture, build

from birdbalance.ledger import EntryKind, Mode
from birdbalance.records import Idempotency, NewEntry
from birdbalance.settings import Settings
from birdbalance.storage import open_store

NAME = "bench_million"


def timed_cli(url: str, *args: str) -> tuple[float, float, str]:
    """Run ``birdbalance ARGS``: (seconds, peak RSS in MB by GNU time, the last line of
    each stage it printed on stderr, or its output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIRDBALANCE_")}
    env["BIRDBALANCE_DATABASE_URL"] = url
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.monotonic()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, str(VENV_BIN / "birdbalance"), *args],
            env=env,
            capture_output=True,
            text=True,
        )
        elapsed_s = time.monotonic() - started
        rss_mb = int(report.read().strip().splitlines()[-1]) / 1024
    if done.returncode != 0:
        raise SystemExit(f"birdbalance {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    last: dict[str, str] = {}
    for line in done.stderr.splitlines():
        if line.strip():
            last[line.split(":")[0]] = line.strip()
    return elapsed_s, rss_mb, ("; ".join(last.values()) or done.stdout.strip())


def median_ms(fn: Callable[[], object], runs: int = 21) -> float:
    fn()  # warm
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def verify_under_writes(url: str, fixture: Fixture) -> tuple[float, float, int]:
    """``verify`` while a writer posts charges: (seconds, the WAL's peak MB, charges)."""
    wal = Path(url.removeprefix("sqlite:///") + "-wal")
    writer = open_store(Settings(database_url=url))
    stop = threading.Event()
    peak = [0]
    posted = [0]

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            account = fixture.account_id((n * 7919) % fixture.accounts)
            new = NewEntry(account, Mode.LIVE, EntryKind.CHARGE, 1, None, None, {})
            writer.append_entry(new, Idempotency(f"bench-{time.time_ns()}", "fp"))
            posted[0] += 1
            if wal.exists():
                peak[0] = max(peak[0], wal.stat().st_size)
            time.sleep(0.002)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        elapsed_s, _, _ = timed_cli(url, "verify")
    finally:
        stop.set()
        thread.join()
        writer.close()
    return elapsed_s, peak[0] / 2**20, posted[0]


def section(engine: str, options: argparse.Namespace) -> list[tuple[str, str]]:
    if options.rebuild:
        if engine == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                (DATA / f"{NAME}.db{suffix}").unlink(missing_ok=True)
        else:
            recreate_database(NAME)
    url = fixture_url(engine, NAME)
    fixture = Fixture(url, options.accounts, options.entries)
    print(f"{engine}: fixture of {fixture.accounts:,} accounts", flush=True)
    build(fixture)
    seconds, _, said = timed_cli(url, "migrate")
    print(f"  migrate: {said} ({seconds:.1f} s)", flush=True)
    rows: list[tuple[str, str]] = []

    seconds, rss_mb, said = timed_cli(url, "verify")
    rows.append(("verify", f"{seconds:.1f} s, peak RSS {rss_mb:.0f} MB ({said})"))
    print("  " + ": ".join(rows[-1]), flush=True)
    if engine == "sqlite":
        seconds, wal_mb, posted = verify_under_writes(url, fixture)
        rows.append(
            ("verify under writes", f"{seconds:.1f} s, WAL peak {wal_mb:.0f} MB, {posted} charges")
        )
        print("  " + ": ".join(rows[-1]), flush=True)
        with tempfile.TemporaryDirectory(dir=DATA) as folder:
            copy = Path(folder) / "backup.db"
            seconds, rss_mb, said = timed_cli(url, "backup", str(copy))
            rows.append(("backup", f"{seconds:.1f} s, peak RSS {rss_mb:.0f} MB ({said})"))
            print("  " + ": ".join(rows[-1]), flush=True)
            before = copy.stat().st_mtime_ns, copy.stat().st_size
            target = f"sqlite:///{Path(folder) / 'restored.db'}"
            seconds, rss_mb, said = timed_cli(target, "restore", str(copy))
            untouched = (copy.stat().st_mtime_ns, copy.stat().st_size) == before and not any(
                Path(str(copy) + suffix).exists() for suffix in ("-wal", "-shm")
            )
            rows.append(
                (
                    "restore",
                    f"{seconds:.1f} s, peak RSS {rss_mb:.0f} MB, backup untouched: {untouched}"
                    f" ({said})",
                )
            )
            print("  " + ": ".join(rows[-1]), flush=True)

    seconds, _, _ = timed_cli(url, "migrate")
    store = open_store(Settings(database_url=url))
    try:
        in_process_ms = median_ms(store.migrate, runs=5)
        rows.append(
            ("no-op migrate", f"{seconds:.2f} s command, {in_process_ms:.1f} ms in process")
        )
        accounts = fixture.accounts
        for depth in (0, accounts // 2, accounts - 60):
            cursor = None if depth == 0 else fixture.account_id(depth)
            ms = median_ms(lambda c=cursor: store.list_accounts(c, 50, None))
            rows.append((f"account page at {depth:,}", f"{ms:.2f} ms"))
        searches = {
            "search: exact id": fixture.account_id(accounts // 3),
            "search: rare name": f"Customer {accounts // 3}",
            "search: common name": "customer",
            "search: two letters": "er",
        }
        for label, text in searches.items():
            ms = median_ms(lambda t=text: store.list_accounts(None, 50, t))
            rows.append((label, f"{ms:.2f} ms"))
        account = fixture.account_id(accounts // 4)
        ms = median_ms(
            lambda: store.statement(account, Mode.LIVE, "2000-01-01", "2999-01-01", 0, 100)
        )
        rows.append(("statement with totals", f"{ms:.2f} ms"))
    finally:
        store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=11)
    parser.add_argument("--rebuild", action="store_true", help="start the fixture over")
    options = parser.parse_args()
    for engine in options.engine or ["sqlite", "postgresql"]:
        rows = section(engine, options)
        width = max(len(label) for label, _ in rows)
        print(f"\n{engine}, {options.accounts:,} accounts x {options.entries} entries")
        for label, value in rows:
            print(f"  {label:<{width}}  {value}")
        print(flush=True)


if __name__ == "__main__":
    main()
