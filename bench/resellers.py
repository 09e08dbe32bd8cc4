"""A reseller with 10,000 sub-accounts: the pages and calls of issue 19, timed.

    .venv/bin/python bench/resellers.py [--children 10000] [--engine sqlite|postgresql|both]

Builds a platform, a reseller under it and ``--children`` sub-accounts under the
reseller through the service (as the API would): half with their own balance (funded by a
transfer, then charged), half shared with a monthly spending limit (charged). Then starts
``birdbalance serve`` on it, signs in to the dashboard with a token confined to the
reseller, and requests each page and API call 30 times: the server's own time (its
``Server-Timing`` header, for pages) and the whole request on loopback. Also times
``GET /balance`` for a shared sub-account's key (two reads) and an own one's (one), in
process. Prints tables; writes nothing but throwaway databases, removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashboard import measure, percentile, signed_in  # noqa: E402
from tests.databases import raw_execute, scratch_database  # noqa: E402
from tests.servers import ADMIN_TOKEN, Server, cli  # noqa: E402

from birdbalance.service import Service  # noqa: E402
from birdbalance.settings import Settings  # noqa: E402
from birdbalance.storage import open_store  # noqa: E402

LOOKUPS = 2000


def _build(url: str, children: int) -> tuple[str, list[str], dict[str, str]]:
    """The tree; the reseller's id, its children's, and a key of each balance kind."""
    store = open_store(Settings(database_url=url))
    service = Service(store)
    try:
        create = service.create_account
        platform = create({"payment": "prepaid", "type": "euros", "name": "Platform"}, None).id
        reseller = create(
            {"payment": "prepaid", "type": "euros", "name": "Reseller", "parent": platform}, None
        ).id
        service.post_entry_record(reseller, _kind("topup"), {"amount": "1000000"}, "fund")
        ids = []
        for n in range(children):
            body = {"payment": "prepaid", "type": "euros", "name": f"Customer {n}",
                    "parent": reseller}  # fmt: skip
            if n % 2:
                body["balance"] = "shared"
                body["spending_limit"] = {"amount": str(50 + n % 97), "period": "month"}
            child = create(body, None).id
            ids.append(child)
            if not n % 2:
                transfer = {"from": reseller, "to": child, "amount": str(10 + n % 89)}
                service.create_transfer(transfer, f"t-{n}")
            charge = {"amount": str(1 + n % 7), "metadata": {"country": ("NL", "DE", "FR")[n % 3]}}
            service.post_entry_record(child, _kind("charge"), charge, f"c-{n}")
        keys = {
            "own": service.create_key(ids[0], {}, None).key,
            "shared": service.create_key(ids[1], {}, None).key,
        }
        return reseller, ids, {k: str(v) for k, v in keys.items()}
    finally:
        store.close()


def _kind(name: str):  # type: ignore[no-untyped-def]
    from birdbalance.ledger import EntryKind

    return EntryKind(name)


def bench(engine: str, children: int) -> None:
    with scratch_database(engine, "bbbench_resellers") as url:
        started = time.perf_counter()
        reseller, ids, keys = _build(url, children)
        built_s = time.perf_counter() - started
        if engine == "postgresql":
            raw_execute(url, "ANALYZE")  # as autovacuum would have by now in service
        store = open_store(Settings(database_url=url))
        try:
            verify_started = time.perf_counter()
            assert store.verify() == [], "the fixture must be a valid ledger"
            verify_s = time.perf_counter() - verify_started
            lookups = {}
            for kind, key in keys.items():
                digest = store.hasher.digest(key)
                timings = []
                for _ in range(LOOKUPS):
                    t = time.perf_counter()
                    assert store.lookup_balance(digest) is not None
                    timings.append((time.perf_counter() - t) * 1e6)
                lookups[kind] = statistics.median(timings)
        finally:
            store.close()
        print(
            f"\n{engine}: {children:,} sub-accounts built in {built_s:.0f} s,"
            f" verify {verify_s:.1f} s; GET /balance lookup p50 in process:"
            f" own {lookups['own']:.1f} µs, shared {lookups['shared']:.1f} µs"
        )
        made = cli("tokens", "create", "--name", "bench", "--scope", "read", "--account",
                   reseller, "--json", db_url=url)  # fmt: skip
        assert made.returncode == 0, made.stderr
        token = re.search(r'"token": "([^"]+)"', made.stdout)
        assert token is not None
        server = Server(db_url=url, log_path=Path(f"/tmp/bench-resellers-{engine}.log")).start()
        try:
            pages = [
                (
                    "dashboard: reseller's page (10 lowest of all)",
                    f"/dashboard/accounts/{reseller}",
                ),
                (
                    "dashboard: sub-accounts, first 50, lowest first",
                    f"/dashboard/accounts/{reseller}/subaccounts",
                ),
                (
                    "dashboard: sub-accounts, last page",
                    f"/dashboard/accounts/{reseller}/subaccounts?from={children - 50}",
                ),
                ("dashboard: the subtree's account list", "/dashboard"),
                ("dashboard: a shared customer's page", f"/dashboard/accounts/{ids[1]}"),
            ]
            print(
                "| call | server p50 ms | server p99 ms | request p50 ms | request p99 ms |"
                "\n|---|---|---|---|---|"
            )
            client = signed_in(server.url, token[1])
            api = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60
            )
            confined = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {token[1]}"}, timeout=60
            )
            calls = [
                *((title, client, path) for title, path in pages),
                (
                    "API: sub-accounts, 100 by id, with totals",
                    api,
                    f"/v1/accounts/{reseller}/subaccounts?limit=100",
                ),
                ("API (confined token): accounts, 100", confined, "/v1/accounts?limit=100"),
                ("API (confined token): a customer", confined, f"/v1/accounts/{ids[-1]}"),
            ]
            for title, who, path in calls:
                server_ms, total_ms, _ = measure(who, path)
                print(
                    f"| {title} | {percentile(server_ms, 0.5)} | {percentile(server_ms, 0.99)}"
                    f" | {statistics.median(total_ms):.1f} | {percentile(total_ms, 0.99)} |"
                )
            for c in (client, api, confined):
                c.close()
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    options = parser.parse_args()
    engines = ("sqlite", "postgresql") if options.engine == "both" else (options.engine,)
    print(f"birdbalance resellers, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores")
    for engine in engines:
        bench(engine, options.children)


if __name__ == "__main__":
    main()
