"""Every "at most N" holds when hundreds of requests arrive at once, on two nodes.

Each bound is counted in the transaction that writes (or with one atomic counter), so
requests released together cannot all pass the check before any of them writes. On both
engines; the failed-authentication budget is shared by the nodes through Redis.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from birdbalance.service import MAX_ALERTS_PER_ACCOUNT, MAX_WEBHOOKS
from birdbalance.storage.credentials import MAX_LIVE_KEYS
from tests.integration.conftest import REDIS_URL
from tests.servers import ADMIN_TOKEN, Admin, Server

BUDGET = 10
#: The failure window: a day, so that a burst never straddles two fixed windows.
DAY_S = "86400"


@pytest.fixture
def nodes(database_url: str, tmp_path: Path, redis_db: redis.Redis) -> Iterator[list[Server]]:
    env = {
        "BIRDBALANCE_TRUSTED_PROXIES": "127.0.0.1",
        "BIRDBALANCE_REDIS_URL": REDIS_URL,
        "BIRDBALANCE_AUTH_FAILURES_PER_ADDRESS": str(BUDGET),
        "BIRDBALANCE_AUTH_FAILURE_WINDOW_S": DAY_S,
        # 150 requests at once per node share 32 pooled connections; on a busy machine
        # the default 0.25 s wait can pass, and the node would (rightly) count alone.
        "BIRDBALANCE_REDIS_TIMEOUT_S": "5",
    }
    started = [
        Server(db_url=database_url, log_path=tmp_path / f"node{n}.log", env=env).start()
        for n in range(2)
    ]
    yield started
    for node in started:
        node.stop()


async def _at_once(requests: list[tuple[str, str, dict[str, Any]]]) -> list[int]:
    """Send every ``(method, url, options)`` at once (one connection each); statuses."""
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        gate = asyncio.Event()

        async def one(method: str, url: str, options: dict[str, Any]) -> int:
            await gate.wait()
            return (await client.request(method, url, **options)).status_code

        tasks = [asyncio.create_task(one(*r)) for r in requests]
        await asyncio.sleep(0.05)
        gate.set()
        return list(await asyncio.gather(*tasks))


def _admin(body: dict[str, Any]) -> dict[str, Any]:
    return {"json": body, "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"}}


def test_webhooks_alert_rules_and_live_keys(nodes: list[Server]) -> None:
    admin = Admin(nodes[0].url)
    try:
        account = admin.account()["id"]
        urls = [node.url for node in nodes]
        webhooks = [
            ("POST", f"{urls[n % 2]}/v1/webhooks", _admin({"url": f"http://127.0.0.1:9/{n}"}))
            for n in range(MAX_WEBHOOKS + 50)
        ]
        rules = [
            (
                "POST",
                f"{urls[n % 2]}/v1/accounts/{account}/alerts",
                _admin({"below": str(n + 1), "mode": ("live", "test")[n // 2 % 2]}),
            )
            for n in range(MAX_ALERTS_PER_ACCOUNT * 5)
        ]
        keys = [
            ("POST", f"{urls[n % 2]}/v1/accounts/{account}/keys", _admin({"mode": "live"}))
            for n in range(MAX_LIVE_KEYS * 10)
        ]
        statuses = asyncio.run(_at_once(webhooks + rules + keys))
        made = Counter(statuses[: len(webhooks)])
        assert made == {201: MAX_WEBHOOKS, 422: 50}, made
        made = Counter(statuses[len(webhooks) : len(webhooks) + len(rules)])
        assert made[201] == MAX_ALERTS_PER_ACCOUNT and made[422] == len(rules) - made[201], made
        made = Counter(statuses[len(webhooks) + len(rules) :])
        assert made[201] == MAX_LIVE_KEYS and made[409] == len(keys) - made[201], made

        assert len(admin.http.get("/v1/webhooks").json()["data"]) == MAX_WEBHOOKS
        stored = admin.http.get(f"/v1/accounts/{account}/alerts").json()["data"]
        assert len(stored) == MAX_ALERTS_PER_ACCOUNT
        live = [k for k in admin.http.get(f"/v1/accounts/{account}/keys").json()["data"]]
        assert len(live) == MAX_LIVE_KEYS
    finally:
        admin.http.close()


def test_hundreds_of_guesses_at_once_get_at_most_the_budget_checked(
    nodes: list[Server],
) -> None:
    address = str(ipaddress.IPv4Address((10 << 24) | random.getrandbits(24)))
    guesses = [
        (
            "GET",
            f"{nodes[n % 2].url}/balance",
            {
                "headers": {
                    "Authorization": f"AccessKey {''.join(random.choices('abcXYZ019', k=25))}",
                    "X-Forwarded-For": address,
                }
            },
        )
        for n in range(300)
    ]
    seen = Counter(asyncio.run(_at_once(guesses)))
    # Every 401 is a guess that was checked; the rest were refused unchecked.
    assert seen[401] == BUDGET and seen[429] == 300 - BUDGET, seen


def test_without_redis_the_budget_holds_per_node(database_url: str, tmp_path: Path) -> None:
    env = {
        "BIRDBALANCE_TRUSTED_PROXIES": "127.0.0.1",
        "BIRDBALANCE_AUTH_FAILURES_PER_ADDRESS": str(BUDGET),
        "BIRDBALANCE_AUTH_FAILURE_WINDOW_S": DAY_S,
    }
    node = Server(db_url=database_url, log_path=tmp_path / "node.log", env=env).start()
    try:
        guesses = [
            (
                "GET",
                f"{node.url}/balance",
                {"headers": {"Authorization": "AccessKey " + "q" * 25, "X-Forwarded-For": "x"}},
            )
            for _ in range(300)
        ]
        seen = Counter(asyncio.run(_at_once(guesses)))
        assert seen[401] == BUDGET and seen[429] == 300 - BUDGET, seen
    finally:
        node.stop()
