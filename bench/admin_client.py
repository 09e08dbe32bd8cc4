"""What the typed admin client costs over raw httpx, on a real server.

    .venv/bin/python bench/admin_client.py [--charges 2000] [--engine sqlite|postgresql]

Starts ``birdbalance serve`` on a throwaway database, funds one account per client, then
posts ``--charges`` charges four ways, alternated in rounds: one after another with raw
``httpx.Client`` (the same headers and JSON, a key per request) and with ``AdminClient``
(``create_charge``: a typed model back); 16 at a time with raw ``httpx.AsyncClient`` and
with ``AsyncAdminClient``. Also times building and decoding alone (no network): ``request()`` and
``typed()`` per call. Prints a table; writes nothing but the throwaway database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.databases import scratch_database  # noqa: E402
from tests.servers import ADMIN_TOKEN, Admin, Server  # noqa: E402

from birdbalance import AdminClient, AsyncAdminClient, shapes  # noqa: E402
from birdbalance.admin_session import request, typed  # noqa: E402
from birdbalance.client import _Answer  # noqa: E402

ROUNDS = 3
CONCURRENCY = 16


def raw(url: str, account: str, count: int) -> float:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        start = time.perf_counter()
        for _ in range(count):
            answer = http.post(
                f"/v1/accounts/{account}/charges",
                content=json.dumps({"amount": "0.0001"}).encode(),
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert answer.status_code == 201, answer.text
            answer.json()
        return time.perf_counter() - start


def typed_sync(url: str, account: str, count: int) -> float:
    with AdminClient(url, ADMIN_TOKEN) as admin:
        start = time.perf_counter()
        for _ in range(count):
            admin.create_charge(account, amount="0.0001")
        return time.perf_counter() - start


def typed_async(url: str, account: str, count: int) -> float:
    async def run() -> float:
        async with AsyncAdminClient(url, ADMIN_TOKEN) as admin:
            pending = asyncio.Semaphore(CONCURRENCY)

            async def one() -> None:
                async with pending:
                    await admin.create_charge(account, amount="0.0001")

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(count)))
            return time.perf_counter() - start

    return asyncio.run(run())


def raw_async(url: str, account: str, count: int) -> float:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}

    async def run() -> float:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            pending = asyncio.Semaphore(CONCURRENCY)

            async def one() -> None:
                async with pending:
                    answer = await http.post(
                        f"/v1/accounts/{account}/charges",
                        content=b'{"amount":"0.0001"}',
                        headers={"Idempotency-Key": str(uuid.uuid4())},
                    )
                    assert answer.status_code == 201, answer.text
                    answer.json()

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(count)))
            return time.perf_counter() - start

    return asyncio.run(run())


def in_process(count: int) -> tuple[float, float]:
    """µs per call of building a charge's request, and of decoding its answer."""
    posted = {
        "entry": {
            "id": "ent_01M8251EV3X822KQNA7WA9CSZJ",
            "account_id": "acc_01M8251EV3X822KQNA7WA9CSZJ",
            "mode": "live",
            "seq": 7,
            "kind": "charge",
            "amount": "-0.0001",
            "balance_after": "9.9999",
            "refund_of": None,
            "reference": None,
            "metadata": {},
            "created_at": "2026-11-28T12:00:00.000000Z",
            "hold": None,
            "attributed_to": None,
        },
        "balance": {"mode": "live", "payment": "prepaid", "type": "euros", "amount": "9.9999"},
    }
    answer = _Answer(201, json.dumps(posted).encode())
    start = time.perf_counter()
    for _ in range(count):
        request("POST", "/v1/accounts/acc_x/charges", body={"amount": "0.0001"})
    built = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(count):
        typed(answer, shapes.PostedEntry, 201)
    decoded = time.perf_counter() - start
    return built / count * 1e6, decoded / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--charges", type=int, default=2000)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with scratch_database(args.engine, "bench_client") as url, tempfile.TemporaryDirectory() as log:
        server = Server(db_url=url, log_path=Path(log) / "server.log").start()
        try:
            admin = Admin(server.url)
            ways = {
                "raw httpx": raw,
                "AdminClient": typed_sync,
                "raw httpx async x16": raw_async,
                "AsyncAdminClient x16": typed_async,
            }
            accounts = {}
            for name in ways:
                accounts[name] = admin.account(name=name)["id"]
                admin.topup(accounts[name], "1000000")
            admin.http.close()
            seconds: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(ROUNDS):
                for name, way in ways.items():
                    seconds[name].append(way(server.url, accounts[name], args.charges))
        finally:
            server.stop()
    print(f"{args.charges} charges, {ROUNDS} rounds alternated, {args.engine}")
    print(f"{'client':<22} {'charges/s (each round)':<32} median")
    for name, spent in seconds.items():
        rates = [args.charges / s for s in spent]
        each = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"{name:<22} {each:<32} {statistics.median(rates):,.0f}")
    built_us, decoded_us = in_process(20_000)
    print(f"in process: request() {built_us:.1f} µs, typed() {decoded_us:.1f} µs per call")


if __name__ == "__main__":
    main()
