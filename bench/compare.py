"""birdbalance against the machine's limits, side by side in one run; prints ratios.

    bench/run                       # everything (about 15 minutes; the first scale run
                                    # also builds an 11,000,000-entry fixture per engine)
    bench/run balance writes        # some sections only
    bench/run --duration 5 --engines sqlite

Sections:

- ``balance``: ``GET /balance`` with wrk at 16 and 64 connections against nginx (a static
  answer after the same header check: the machine's HTTP limit), a raw ASGI app on the
  same granian options (the Python limit), and birdbalance on SQLite and PostgreSQL.
- ``writes``: durable charges with idempotency keys over HTTP at 1, 16 and 64 clients,
  spread over 10,000 accounts and all on one hot account, on SQLite (synchronous=FULL)
  and PostgreSQL; against pgbench's TPC-B-like run on the same PostgreSQL at the same
  client counts, and a raw sqlite3 loop of one transaction per write.
- ``alerts``: alert latency, from the answer to a write that crosses a threshold to the
  arrival of its ``balance.low``/``balance.recovered`` webhook at a receiver on loopback,
  while 16 clients charge other accounts.
- ``scale``: ``GET /balance`` latency with random keys (every key of 1,000 accounts; and
  ``--keys``, default 100,000, of 1,000,000 accounts with 11,000,000 entries, the
  fixture ``bench/million.py`` shares) and the worker's resident memory, with the answer
  cache off (every request reads the database) and as configured by default.

wrk runs on the same two cores as the servers, so every figure here includes its cost.
Compare figures from one run only: run-to-run noise on this machine is 10-20 %.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = BENCH / ".data"
VENV_BIN = Path(sys.executable).parent
ADMIN_TOKEN = "bench-admin-token-0123456789"
PG_ADMIN_URL = os.environ.get(
    "BIRDBALANCE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

sys.path.insert(0, str(BENCH))
from fixtures import Fixture, build  # noqa: E402

# ---------------------------------------------------------------- plumbing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing answered at {url} within {timeout_s} s")


@contextlib.contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in the finally below
    proc = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.returncode not in (0, -signal.SIGTERM, None):
            log.seek(0)
            tail = log.read()[-2000:].decode("utf-8", "replace")
            print(f"  ({args[0]} exited {proc.returncode}: {tail})")
        log.close()


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if int((child / "stat").read_text().split(") ", 1)[1].split()[1]) == parent:
                    found.append(int(child.name))
                    todo.append(int(child.name))
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Wrk:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int

    @property
    def ok_rps(self) -> float:
        return self.rps * (1 - self.errors / self.requests) if self.requests else 0.0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str,
    connections: int,
    duration_s: float,
    *,
    script: str | None = None,
    args: list[str] | None = None,
    headers: list[str] | None = None,
) -> Wrk:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for header in headers or []:
        command += ["-H", header]
    if script:
        command += ["-s", str(BENCH / script)]
    command.append(url)
    if args:
        command += ["--", *args]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)$", out, re.M))

    def ms(text: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
        return float(number) * _UNITS[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    failed = int(errors[1]) if errors else 0
    if socket_errors:
        failed += sum(int(g) for g in socket_errors.groups())
    return Wrk(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        p50_ms=ms(percentiles["50"]),
        p99_ms=ms(percentiles["99"]),
        errors=failed,
        requests=int(re.search(r"(\d+) requests in", out)[1]),  # type: ignore[index]
    )


def best_of(runs: int, measure) -> Wrk:  # type: ignore[no-untyped-def]
    """The median run by throughput (PERF_BASELINE's method)."""
    results = sorted((measure() for _ in range(runs)), key=lambda w: w.ok_rps)
    return results[len(results) // 2]


def postgres_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def recreate_database(name: str) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_url(name)


def database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


@contextlib.contextmanager
def birdbalance(url: str, **env: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    settings = {
        "BIRDBALANCE_DATABASE_URL": url,
        "BIRDBALANCE_ADMIN_TOKEN": ADMIN_TOKEN,
        "BIRDBALANCE_PORT": str(port),
        **env,
    }
    with process([str(VENV_BIN / "birdbalance"), "serve"], settings) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/healthz")
        yield base, proc.pid


def fixture_url(engine: str, name: str) -> str:
    if engine == "sqlite":
        DATA.mkdir(exist_ok=True)
        return f"sqlite:///{DATA / (name + '.db')}"
    return postgres_url(name) if database_exists(name) else recreate_database(name)


def fresh_fixture(engine: str, name: str, accounts: int, per: int) -> Fixture:
    """A new fixture database (the write benchmarks change it)."""
    if engine == "sqlite":
        DATA.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            (DATA / f"{name}.db{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{DATA / (name + '.db')}"
    else:
        url = recreate_database(name)
    fixture = Fixture(url, accounts, per)
    build(fixture, progress=False)
    return fixture


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}\n")
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    sys.stdout.flush()


def pct(value: float, reference: float) -> str:
    return f"{100 * value / reference:.0f} %" if reference else "-"


# ---------------------------------------------------------------- sections


NGINX_CONF = """
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=1024;
        location = /balance {{
            default_type application/json;
            if ($http_authorization != "AccessKey {key}") {{
                return 401 '{unauthorized}';
            }}
            return 200 '{{"payment":"prepaid","type":"euros","amount":103}}';
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(key: str) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder) / "nginx.conf"
        unauthorized = (
            '{"errors":[{"code":2,"description":"Request not allowed","parameter":null}]}'
        )
        conf.write_text(
            NGINX_CONF.format(dir=folder, port=port, key=key, unauthorized=unauthorized)
        )
        with process(["nginx", "-c", str(conf), "-p", folder, "-g", "daemon off;"]):
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/balance")
            yield base


@contextlib.contextmanager
def raw_asgi(key: str) -> Iterator[str]:
    port = free_port()
    with process([sys.executable, str(BENCH / "raw_asgi.py"), str(port), key], cwd=BENCH):
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/balance")
        yield base


def section_balance(options: argparse.Namespace) -> None:
    fixtures = {
        engine: fresh_fixture(engine, "bench_balance", 1_000, 1) for engine in options.engines
    }
    key = Fixture("", 0, 0).key(7)
    auth = f"Authorization: AccessKey {key}"
    results: dict[str, dict[int, Wrk]] = {}

    def measure(name: str, base: str) -> None:
        wrk(base + "/balance", 16, 1, headers=[auth])  # warm-up
        results[name] = {
            c: best_of(
                options.repeat,
                lambda c=c: wrk(base + "/balance", c, options.duration, headers=[auth]),
            )
            for c in (16, 64)
        }

    with nginx(key) as base:
        measure("nginx", base)
    with raw_asgi(key) as base:
        measure("raw ASGI (granian)", base)
    for engine, fixture in fixtures.items():
        with birdbalance(fixture.url) as (base, _):
            measure(f"birdbalance, {engine}", base)
    rows = []
    for name, by_conn in results.items():
        rows.append(
            [name]
            + [f"{by_conn[c].ok_rps:,.0f}" for c in (64, 16)]
            + [f"{by_conn[c].p50_ms:.2f} / {by_conn[c].p99_ms:.2f}" for c in (64, 16)]
            + [
                pct(by_conn[64].ok_rps, results["raw ASGI (granian)"][64].ok_rps),
                pct(by_conn[64].ok_rps, results["nginx"][64].ok_rps),
            ]
        )
        bad = sum(w.errors for w in by_conn.values())
        if bad:
            rows[-1][0] += f" ({bad} errors)"
    table(
        f"GET /balance, {options.duration:g} s per run, median of {options.repeat}",
        [
            "server",
            "req/s @64",
            "req/s @16",
            "p50 / p99 ms @64",
            "p50 / p99 ms @16",
            "of raw ASGI @64",
            "of nginx @64",
        ],
        rows,
    )


def raw_sqlite_loop(duration_s: float) -> float:
    """One transaction per write (UPDATE a balance, INSERT an entry), synchronous=FULL."""
    with tempfile.TemporaryDirectory(dir=DATA) as folder:
        conn = sqlite3.connect(Path(folder) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE balances (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        conn.execute(
            "CREATE TABLE entries (id INTEGER PRIMARY KEY, account INTEGER NOT NULL,"
            " amount INTEGER NOT NULL, balance_after INTEGER NOT NULL)"
        )
        conn.executemany("INSERT INTO balances VALUES (?, ?)", [(n, 10**12) for n in range(10_000)])
        done, deadline = 0, time.monotonic() + duration_s
        started = time.monotonic()
        while time.monotonic() < deadline:
            account = done % 10_000
            conn.execute("BEGIN IMMEDIATE")
            balance = conn.execute(
                "UPDATE balances SET balance = balance - 1 WHERE id = ? RETURNING balance",
                (account,),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO entries (account, amount, balance_after) VALUES (?, -1, ?)",
                (account, balance),
            )
            conn.execute("COMMIT")
            done += 1
        rate = done / (time.monotonic() - started)
        conn.close()
    return rate


def pgbench_init() -> None:
    """A fresh pgbench database at scale 10."""
    recreate_database("bench_pgbench")
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", "10", postgres_url("bench_pgbench")],
        check=True,
        capture_output=True,
    )


def pgbench(clients: int, duration_s: float) -> float:
    url = postgres_url("bench_pgbench")
    out = subprocess.run(
        [
            "pgbench",
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(int(duration_s)),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)[1])  # type: ignore[index]


def section_writes(options: argparse.Namespace) -> None:
    clients = (1, 16, 64)
    rows = []
    DATA.mkdir(exist_ok=True)
    raw = raw_sqlite_loop(options.duration)
    rows.append(["raw sqlite3 loop, 1 tx per write (FULL)", f"{raw:,.0f}", "", "", ""])
    if "postgresql" in options.engines:
        pgbench_init()
        tpcb = {
            c: statistics.median(pgbench(c, options.duration) for _ in range(options.repeat))
            for c in clients
        }
        rows.append(
            ["pgbench TPC-B-like (-M prepared, -s 10)", *(f"{tpcb[c]:,.0f}" for c in clients), ""]
        )
    spread_rates: dict[tuple[str, int], float] = {}
    for engine in options.engines:
        fixture = fresh_fixture(engine, "bench_writes", 10_000, 1)
        accounts_file = DATA / "accounts.txt"
        with birdbalance(fixture.url) as (base, _):
            for label, count in (("10,000 accounts", 10_000), ("one hot account", 1)):
                accounts_file.write_text(
                    "\n".join(fixture.account_id(n) for n in range(count)) + "\n"
                )
                rates = []
                for c in clients:
                    run = lambda c=c: wrk(  # noqa: E731
                        base,
                        c,
                        options.duration,
                        script="charges.lua",
                        args=[str(accounts_file), ADMIN_TOKEN, uuid.uuid4().hex],  # noqa: B023
                    )
                    result = best_of(options.repeat, run)
                    if result.errors:
                        print(f"  {engine} {label} @{c}: {result.errors} failed requests")
                    rates.append(result.ok_rps)
                    if count > 1:
                        spread_rates[(engine, c)] = result.ok_rps
                hot = "" if count > 1 else pct(rates[-1], spread_rates[(engine, 64)])
                rows.append(
                    [
                        f"birdbalance {engine}, charges over HTTP, {label}",
                        *(f"{r:,.0f}" for r in rates),
                        hot,
                    ]
                )
        verify = subprocess.run(
            [str(VENV_BIN / "birdbalance"), "verify"],
            env={**os.environ, "BIRDBALANCE_DATABASE_URL": fixture.url},
            capture_output=True,
            text=True,
        )
        said = (verify.stdout.strip() or verify.stderr.strip()).splitlines()[-1:]
        print(f"  birdbalance verify on {engine} after the writes: exit {verify.returncode} {said}")
    table(
        f"Durable writes per second ({options.duration:g} s per run, median of {options.repeat})",
        ["workload", "1 client", "16 clients", "64 clients", "hot / spread @64"],
        rows,
    )


def _bulk_client(job: tuple[str, Fixture, float, int]) -> int:
    """Post bulks of 1,000 charges on random accounts until ``deadline``; how many posted."""
    base, fixture, deadline, seed = job
    posted = 0
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        while time.monotonic() < deadline:
            ops = [
                {
                    "type": "charge",
                    "account": fixture.account_id(rng.randrange(fixture.accounts)),
                    "amount": "0.000001",
                    "idempotency_key": uuid.uuid4().hex,
                }
                for _ in range(1000)
            ]
            answer = http.post(
                "/v1/bulk", json={"operations": ops}, headers={"Idempotency-Key": uuid.uuid4().hex}
            )
            if answer.status_code == 200:  # else 503: every bulk slot was taken
                posted += sum(r["status"] == 201 for r in answer.json()["results"])
    return posted


def section_bulk(options: argparse.Namespace) -> None:
    """Entries per second through ``POST /v1/bulk`` (1,000 charges a request, over 10,000
    accounts, from as many clients as a process has bulk slots), beside the raw sqlite3
    loop and pgbench from the same run; then ``verify``."""
    from birdbalance.http.bulk import MAX_BULK_IN_FLIGHT

    DATA.mkdir(exist_ok=True)
    raw = raw_sqlite_loop(options.duration)
    rows = [["raw sqlite3 loop, 1 tx per write (FULL)", f"{raw:,.0f}", "", ""]]
    tpcb = 0.0
    if "postgresql" in options.engines:
        pgbench_init()
        tpcb = max(pgbench(c, options.duration) for c in (16, 64))
        rows.append(["pgbench TPC-B-like (-M prepared, best of 16 / 64 clients)",
                     f"{tpcb:,.0f}", "", ""])  # fmt: skip
    for engine in options.engines:
        fixture = fresh_fixture(engine, "bench_bulk", 10_000, 1)
        with birdbalance(fixture.url) as (base, _):
            deadline = time.monotonic() + options.duration
            started = time.monotonic()
            with ThreadPoolExecutor(MAX_BULK_IN_FLIGHT) as pool:
                counts = pool.map(
                    _bulk_client, [(base, fixture, deadline, n) for n in range(MAX_BULK_IN_FLIGHT)]
                )
                posted = sum(counts)
            rate = posted / (time.monotonic() - started)
        verify = subprocess.run(
            [str(VENV_BIN / "birdbalance"), "verify"],
            env={**os.environ, "BIRDBALANCE_DATABASE_URL": fixture.url},
            capture_output=True,
            text=True,
        )
        reference, name, target = (
            (raw, "raw loop", 10) if engine == "sqlite" else (tpcb, "pgbench", 5)
        )
        rows.append(
            [
                f"birdbalance {engine}, bulk charges over HTTP (verify exit {verify.returncode})",
                f"{rate:,.0f}",
                f"{rate / reference:.1f}x {name}" if reference else "",
                ("✓" if rate >= target * reference else "✗") + f" {target}x",
            ]
        )
    table(
        f"Entries per second through bulk ({options.duration:g} s, 1,000 charges a request)",
        ["workload", "entries/s", "ratio", "target"],
        rows,
    )


def read_through(path: Path) -> None:
    """Read a file once so it is in the OS page cache, as a serving database would be.

    Without it the first scale runs after building (or after the other engine's runs
    evicted it) measured the disk: SQLite at 1,000,000 accounts read +121 % to +257 %
    slower than at 1,000 with a cold cache, and -4 % with a warm one.
    """
    with path.open("rb") as file:
        while file.read(16 << 20):
            pass


def section_scale(options: argparse.Namespace) -> None:
    rows = []
    for engine in options.engines:
        measured: dict[tuple[str, int], Wrk] = {}
        for accounts, per, name in (
            (1_000, 11, "bench_scale_1000"),
            (1_000_000, 11, "bench_million"),
        ):
            url = fixture_url(engine, name)
            print(
                f"  {engine}: fixture of {accounts:,} accounts, {accounts * per:,} entries",
                flush=True,
            )
            fixture = Fixture(url, accounts, per)
            build(fixture)
            if engine == "sqlite":
                read_through(Path(url.removeprefix("sqlite:///")))
            keys_file = DATA / "keys.txt"
            sample = random.Random(1).sample(range(accounts), min(accounts, options.keys))
            keys_file.write_text("\n".join(fixture.key(n) for n in sample) + "\n")
            # Twice: with the answer cache off (every request reads the database, as after
            # a write) and as configured by default (10,000 keys, the whole sample).
            for cache, size in (("off", "0"), ("default", "10000")):
                with birdbalance(url, BIRDBALANCE_BALANCE_CACHE_SIZE=size) as (base, pid):
                    # Warm-up: a few reads per sampled key, so the measured run finds the
                    # pages of every key in memory; a fixture built moments ago (or
                    # evicted by the other engine's) otherwise makes this a disk benchmark.
                    warm_s = max(6.0, len(sample) / 5_000)
                    wrk(base, 16, warm_s, script="balance.lua", args=[str(keys_file)])
                    result = best_of(
                        options.repeat,
                        lambda base=base: wrk(
                            base,
                            16,
                            options.duration,
                            script="balance.lua",
                            args=[str(keys_file)],  # noqa: B023
                        ),
                    )
                    workers = descendants(pid)
                    worker_rss = max((rss_mb(p) for p in workers), default=0.0)
                measured[(cache, accounts)] = result
                growth = ""
                if accounts == 1_000_000:
                    ratio = result.p50_ms / measured[(cache, 1_000)].p50_ms - 1
                    growth = f"{100 * ratio:+.0f} %"
                rows.append(
                    [
                        engine + (f" ({result.errors} errors)" if result.errors else ""),
                        cache,
                        f"{accounts:,}",
                        f"{accounts * per:,}",
                        f"{result.ok_rps:,.0f}",
                        f"{result.p50_ms:.3f}",
                        f"{result.p99_ms:.2f}",
                        f"{worker_rss:.0f} MB",
                        growth,
                    ]
                )
    rows.sort(key=lambda r: (r[0], r[1] != "off"))
    table(
        f"GET /balance with random keys (all of 1,000; {options.keys:,} of 1,000,000) at 16"
        " connections"
        f" ({options.duration:g} s, median of {options.repeat})",
        [
            "engine",
            "answer cache",
            "accounts",
            "entries",
            "req/s",
            "p50 ms",
            "p99 ms",
            "worker RSS",
            "p50 vs 1,000",
        ],
        rows,
    )


class _Receiver:
    """A webhook receiver on loopback that stamps each event's arrival (monotonic)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        arrivals: dict[str, float] = {}
        self.arrivals = arrivals
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.monotonic()
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    arrivals.setdefault(self.headers.get("Birdbalance-Event-Id", ""), at)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def section_alerts(options: argparse.Namespace) -> None:
    """Alert latency: a threshold crossing to its webhook's arrival, under a charge load."""
    crossings = max(20, int(options.duration * 10))
    rows = []
    for engine in options.engines:
        fixture = fresh_fixture(engine, "bench_alerts", 10_000, 1)
        accounts_file = DATA / "accounts.txt"
        accounts_file.write_text("\n".join(fixture.account_id(n) for n in range(1, 10_000)) + "\n")
        with (
            _Receiver() as receiver,
            birdbalance(fixture.url) as (base, _),
            httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            ) as admin,
        ):
            watched = fixture.account_id(0)
            rule = admin.post(f"/v1/accounts/{watched}/alerts", json={"below": "100"})
            hook = admin.post("/v1/webhooks", json={"url": receiver.url, "account": watched})
            assert rule.status_code == 201 and hook.status_code == 201, (rule.text, hook.text)
            balance = admin.get(f"/v1/accounts/{watched}").json()["balances"]["live"]["available"]
            # Down to 100.01: every charge of 0.02 then crosses below 100, and every top-up
            # of 0.02 climbs back above it: one balance.low or balance.recovered per write.
            drop = str(Decimal(balance) - Decimal("100.01"))
            admin.post(
                f"/v1/accounts/{watched}/charges",
                json={"amount": drop},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            load = subprocess.Popen(  # background charges on the other accounts
                [
                    "wrk", "-t1", "-c16", f"-d{int(crossings * 0.2) + 10}s",
                    "-s", str(BENCH / "charges.lua"), base,
                    "--", str(accounts_file), ADMIN_TOKEN, uuid.uuid4().hex,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            latencies_ms: list[float] = []
            try:
                time.sleep(2)
                for n in range(crossings):
                    kind = "charges" if n % 2 == 0 else "topups"
                    before = {e for e in receiver.arrivals}
                    answered = admin.post(
                        f"/v1/accounts/{watched}/{kind}",
                        json={"amount": "0.02"},
                        headers={"Idempotency-Key": uuid.uuid4().hex},
                    )
                    written = time.monotonic()
                    assert answered.status_code == 201, answered.text
                    deadline = written + 10
                    while set(receiver.arrivals) == before and time.monotonic() < deadline:
                        time.sleep(0.001)
                    new = set(receiver.arrivals) - before
                    if not new:
                        print(f"  {engine}: crossing {n} never arrived")
                        continue
                    latencies_ms.append(1000 * (receiver.arrivals[new.pop()] - written))
                    # A random gap, so crossings do not fall in step with the fallback poll.
                    time.sleep(random.uniform(0.02, 0.3))
            finally:
                load.terminate()
                load.wait()
        rows.append(
            [
                engine,
                f"{len(latencies_ms)} / {crossings}",
                f"{_percentile(latencies_ms, 0.5):.0f}",
                f"{_percentile(latencies_ms, 0.99):.0f}",
                f"{max(latencies_ms):.0f}",
                "✓" if _percentile(latencies_ms, 0.99) <= 50 else "✗",
            ]
        )
    table(
        "Alert latency: a write's answer to its webhook's arrival, with 16 clients charging"
        " other accounts (target p99 <= 50 ms)",
        ["engine", "arrived", "p50 ms", "p99 ms", "max ms", "p99 <= 50 ms"],
        rows,
    )


SECTIONS = {
    "balance": section_balance,
    "writes": section_writes,
    "scale": section_scale,
    "alerts": section_alerts,
    "bulk": section_bulk,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per figure (the median is shown)"
    )
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument(
        "--keys", type=int, default=100_000, help="keys sampled of 1,000,000 accounts (scale)"
    )
    options = parser.parse_args()
    options.engines = [e for e in options.engines.split(",") if e]
    unknown = set(options.sections) - set(SECTIONS)
    if unknown or not set(options.engines) <= {"sqlite", "postgresql"}:
        parser.error(f"unknown section or engine: {sorted(unknown) or options.engines}")
    for tool in ("wrk", "nginx", "pgbench"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run bench/run, which installs it")
    when = time.strftime("%Y-%m-%d %H:%M")
    print(f"birdbalance benchmarks, {when}, {os.cpu_count()} cores, wrk on the same machine")
    for name in options.sections or list(SECTIONS):
        SECTIONS[name](options)


if __name__ == "__main__":
    main()
