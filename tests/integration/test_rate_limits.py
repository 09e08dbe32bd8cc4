"""Abuse controls over HTTP: per-key and per-address rate limits (429 with Retry-After),
shared by two nodes through Redis, and failed-authentication throttling that stops
guessing from an address without locking out a key that already works from there.

Client addresses are simulated with ``X-Forwarded-For`` from a trusted proxy (loopback).
"""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import httpx
import redis

from tests.integration.conftest import REDIS_URL
from tests.servers import ADMIN_TOKEN, Admin, Server

# A failure window of a day: the budgets are fixed windows aligned to the clock, and a
# burst that straddles a boundary would be counted in two of them.
TRUST_LOOPBACK = {
    "BIRDBALANCE_TRUSTED_PROXIES": "127.0.0.1",
    "BIRDBALANCE_AUTH_FAILURE_WINDOW_S": "86400",
}


def _address() -> str:
    """A fresh client address in 10.0.0.0/8, so tests and runs never share a bucket.

    (One of 254 addresses collided with another of the same test about once in fifty runs,
    and a throttled address then refused a key that should have worked.)
    """
    return str(ipaddress.IPv4Address((10 << 24) | random.getrandbits(24)))


def _server(db_url: str, log: Path, **env: str) -> Server:
    return Server(db_url=db_url, log_path=log, env={**TRUST_LOOPBACK, **env}).start()


def _balance(url: str, key: str, address: str) -> httpx.Response:
    return httpx.get(
        url + "/balance",
        headers={"Authorization": f"AccessKey {key}", "X-Forwarded-For": address},
    )


def test_per_key_and_per_address_limits(database_url: str, tmp_path: Path) -> None:
    server = _server(
        database_url,
        tmp_path / "s.log",
        BIRDBALANCE_RATE_LIMIT_PER_KEY="5",
        BIRDBALANCE_RATE_LIMIT_PER_ADDRESS="12",
    )
    try:
        admin = Admin(server.url)
        account = admin.account()["id"]
        quiet = admin.key(account)["key"]
        # One kept-alive connection: the ten requests are a burst inside a window however
        # slow it is to open a connection on a busy machine. A burst that still straddled
        # a window boundary on a loaded machine (5 + 5, no 429: seen once in a full run)
        # is tried again with a fresh key and address, at most three times.
        for _ in range(3):
            busy, address = admin.key(account)["key"], _address()
            with httpx.Client(
                headers={"Authorization": f"AccessKey {busy}", "X-Forwarded-For": address}
            ) as burst:
                answers = [burst.get(server.url + "/balance") for _ in range(10)]
            statuses = [r.status_code for r in answers]
            assert 200 in statuses and statuses.count(200) <= 2 * 5, statuses
            if 429 in statuses:
                break
        assert 429 in statuses, statuses
        limited = next(r for r in answers if r.status_code == 429)
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["errors"][0]["code"] == 29
        # Another key from another address is untouched by the busy key's limit.
        assert _balance(server.url, quiet, _address()).status_code == 200
        # Per address: every path counts, the probes never do.
        other = _address()
        with httpx.Client(
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Forwarded-For": other}
        ) as burst:
            seen = [burst.get(server.url + "/v1/accounts").status_code for _ in range(30)]
        assert 429 in seen and seen.count(200) <= 2 * 12, seen
        probes = [
            httpx.get(server.url + "/healthz", headers={"X-Forwarded-For": other}).status_code
            for _ in range(30)
        ]
        assert set(probes) == {200}
        admin.http.close()
    finally:
        server.stop()


def test_failed_authentication_is_throttled_per_address(database_url: str, tmp_path: Path) -> None:
    server = _server(
        database_url,
        tmp_path / "s.log",
        BIRDBALANCE_AUTH_FAILURES_PER_ADDRESS="5",
    )
    try:
        admin = Admin(server.url)
        account = admin.account()["id"]
        holder, unused = admin.key(account)["key"], admin.key(account)["key"]
        guesser = _address()
        assert _balance(server.url, holder, guesser).status_code == 200  # worked from there
        guesses = [
            _balance(server.url, "".join(random.choices("abcdefghXYZ0123", k=25)), guesser)
            for _ in range(8)
        ]
        assert [g.status_code for g in guesses[:5]] == [401] * 5
        assert {g.status_code for g in guesses[5:]} == {429}
        assert 1 <= int(guesses[5].headers["retry-after"]) <= 86400
        # Even a right guess is not checked any more from that address...
        assert _balance(server.url, unused, guesser).status_code == 429
        # ...but the key that already worked there still does, and other addresses are free.
        assert _balance(server.url, holder, guesser).status_code == 200
        assert _balance(server.url, unused, _address()).status_code == 200
        # The admin API and the dashboard's sign-in count failures the same way.
        admin_address = _address()
        tries = [
            httpx.get(
                server.url + "/v1/accounts",
                headers={
                    "Authorization": f"Bearer wrong-token-{n}",
                    "X-Forwarded-For": admin_address,
                },
            ).status_code
            for n in range(7)
        ]
        assert tries == [401] * 5 + [429] * 2
        assert (
            httpx.get(
                server.url + "/v1/accounts",
                headers={
                    "Authorization": f"Bearer {ADMIN_TOKEN}",
                    "X-Forwarded-For": admin_address,
                },
            ).status_code
            == 429
        )  # never used from there before
        with httpx.Client(base_url=server.url, headers={"X-Forwarded-For": _address()}) as web:
            statuses = []
            for _ in range(7):
                form = web.get("/dashboard/sign-in")
                csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
                r = web.post("/dashboard/sign-in", data={"credential": "x" * 25, "csrf": csrf})
                statuses.append(r.status_code)
            assert statuses == [401] * 5 + [429] * 2
            assert "Too many failed sign-ins" in r.text and r.headers["retry-after"]
        admin.http.close()
    finally:
        server.stop()


def test_redis_shares_the_counts_between_nodes(
    database_url: str, tmp_path: Path, redis_db: redis.Redis
) -> None:
    shared = {"BIRDBALANCE_REDIS_URL": REDIS_URL, "BIRDBALANCE_AUTH_FAILURES_PER_ADDRESS": "4"}
    a = _server(database_url, tmp_path / "a.log", BIRDBALANCE_RATE_LIMIT_PER_KEY="1000", **shared)
    b = _server(database_url, tmp_path / "b.log", BIRDBALANCE_RATE_LIMIT_PER_KEY="1000", **shared)
    try:
        admin = Admin(a.url)
        account = admin.account()["id"]
        key = admin.key(account)["key"]
        address = _address()
        # Four failures on node A use up the address's budget on node B too.
        for _ in range(4):
            assert _balance(a.url, "q" * 25, address).status_code == 401
        assert _balance(b.url, "r" * 25, address).status_code == 429
        assert _balance(b.url, key, _address()).status_code == 200
        # Per-key counts add up across nodes in Redis.
        for url in (a.url, b.url, a.url, b.url):
            assert _balance(url, key, _address()).status_code == 200
        counted = sum(int(redis_db.get(k) or 0) for k in redis_db.scan_iter("birdbalance:rl:key:*"))
        assert counted >= 5
        assert any(redis_db.scan_iter("birdbalance:rl:fail:" + address + ":*"))
        admin.http.close()
    finally:
        a.stop()
        b.stop()


def test_without_redis_each_node_still_limits(database_url: str, tmp_path: Path) -> None:
    """An unreachable Redis neither blocks traffic nor lifts the limits."""
    server = _server(
        database_url,
        tmp_path / "s.log",
        BIRDBALANCE_REDIS_URL="redis://127.0.0.1:1/0",
        BIRDBALANCE_AUTH_FAILURES_PER_ADDRESS="3",
    )
    try:
        admin = Admin(server.url)
        key = admin.key(admin.account()["id"])["key"]
        address = _address()
        assert _balance(server.url, key, address).status_code == 200
        statuses = [_balance(server.url, "z" * 25, address).status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        assert _balance(server.url, key, address).status_code == 200
        admin.http.close()
    finally:
        server.stop()
    assert "Redis is unreachable" in server.log_path.read_text()
