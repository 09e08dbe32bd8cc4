"""The deliverer and the outbox's claims, in process, on a real store of each engine.

A claim counts its attempt before anything is sent, so no delivery is sent again without
its previous attempt on record; a result recorded after the delivery moved on changes
nothing; each subscription gets its own few slots; and a failure the transport did not
expect is one delivery's failed attempt, never the deliverer's end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from birdbalance.ids import utc_timestamp
from birdbalance.ledger import EntryKind
from birdbalance.runtime.deliverer import Deliverer
from birdbalance.service import Service
from birdbalance.settings import Settings
from birdbalance.shapes import render
from birdbalance.storage import Store, open_store
from birdbalance.timestamps import timestamp_after
from tests.databases import raw_execute

LONG_AGO = "2000-01-01T00:00:00.000000Z"


@pytest.fixture
def service(database_url: str) -> Iterator[Service]:
    store = open_store(Settings(database_url=database_url))
    store.migrate()
    yield Service(store)
    store.close()


def _events(service: Service, urls: list[str], count: int) -> tuple[str, list[str]]:
    """An account with a low-balance rule, subscriptions to ``urls``, ``count`` events."""
    account = render(service.create_account({"payment": "prepaid", "type": "euros"}, None))["id"]
    hooks = [render(service.create_webhook({"url": url}))["id"] for url in urls]
    render(service.post_entry(account, EntryKind.TOPUP, {"amount": "100"}, f"{account}-t0"))
    render(service.create_alert(account, {"below": "50"}))
    for n in range(count):
        kind, amount = (EntryKind.CHARGE, "60") if n % 2 == 0 else (EntryKind.TOPUP, "60")
        render(service.post_entry(account, kind, {"amount": amount}, f"{account}-{n}"))
    return account, hooks


def _claim(store: Store, limit: int = 8, **kw: Any) -> list[Any]:
    args: dict[str, Any] = {"max_attempts": 3, "per_webhook": 4, "in_flight": {}, **kw}
    return store.claim_deliveries(utc_timestamp(), timestamp_after(60), limit, **args)


def _lease_lost(database_url: str, delivery_id: str) -> None:
    """The claim's lease ran out, as if the process holding it had died."""
    raw_execute(
        database_url,
        f"UPDATE deliveries SET next_attempt_at = '{LONG_AGO}' WHERE id = '{delivery_id}'",
    )


def _delivery(service: Service, delivery_id: str) -> dict[str, Any]:
    found = render(service.list_deliveries(status=None, webhook_id=None, cursor=None, limit="100"))
    return next(d for d in found["data"] if d["id"] == delivery_id)


def test_a_claim_puts_its_attempt_on_record_before_anything_is_sent(
    service: Service, database_url: str
) -> None:
    store = service.store
    _events(service, ["http://127.0.0.1:9/a"], 1)
    [first] = _claim(store)
    assert first.attempts == 0
    shown = _delivery(service, first.id)
    assert shown["attempts"] == 1 and shown["last_error"].startswith("no result recorded")
    assert _claim(store) == []  # leased

    # The lease runs out with no result (a crash): the next claim is attempt 2, and the
    # first attempt's late result is refused.
    _lease_lost(database_url, first.id)
    [second] = _claim(store)
    assert second.id == first.id and second.attempts == 1
    late = {"delivered": True, "status": 204, "error": None, "retry_at": None}
    assert store.record_attempt(first.id, attempt=1, **late) is False
    assert _delivery(service, first.id)["status"] == "pending"
    assert store.record_attempt(first.id, attempt=2, **late) is True
    assert _delivery(service, first.id)["status"] == "delivered"


def test_a_last_attempt_that_never_recorded_is_dead_lettered(
    service: Service, database_url: str
) -> None:
    store = service.store
    _events(service, ["http://127.0.0.1:9/a"], 1)
    for attempt in (1, 2, 3):
        [claimed] = _claim(store, max_attempts=3)
        assert claimed.attempts == attempt - 1
        _lease_lost(database_url, claimed.id)
    assert _claim(store, max_attempts=3) == []
    shown = _delivery(service, claimed.id)
    assert shown["status"] == "dead" and shown["attempts"] == 3
    assert "no attempts left" in shown["last_error"]


def test_each_subscription_gets_its_own_slots(service: Service) -> None:
    store = service.store
    _, (slow, other) = _events(service, ["http://127.0.0.1:9/slow", "http://127.0.0.1:9/b"], 9)
    # The second subscription's deliveries are all younger than the first's backlog.
    claimed = _claim(store, limit=8)
    by_hook = [c.webhook_id for c in claimed]
    assert by_hook.count(slow) == 4 and by_hook.count(other) == 4
    # With three of its four slots busy, the first gets one more; the other none.
    more = _claim(store, limit=8, in_flight={slow: 3, other: 4})
    assert [c.webhook_id for c in more] == [slow]


def _run_deliverer(service: Service, handler: Callable[[httpx.Request], httpx.Response]) -> None:
    settings = Settings(
        database_url="sqlite:///unused.db",
        webhook_poll_interval_s=0.01,
        webhook_retry_base_s=0.01,
        webhook_retry_cap_s=0.02,
        webhook_timeout_s=1,
    )

    async def run_write(fn: Callable[[], Any]) -> Any:
        return fn()

    async def go() -> None:
        deliverer = Deliverer(
            service.store, settings, run_write, transport=httpx.MockTransport(handler)
        )
        task = asyncio.create_task(deliverer.run())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


def test_an_exception_the_transport_did_not_expect_is_one_failed_attempt(
    service: Service,
) -> None:
    received: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/broken":
            raise RuntimeError("a bug in a transport")
        received.append(request.headers["Birdbalance-Event-Id"])
        return httpx.Response(204)

    _, (broken, _) = _events(
        service, ["http://receiver.test/broken", "http://receiver.test/fine"], 2
    )
    _run_deliverer(service, handler)
    assert len(set(received)) == 2  # the healthy subscription got both events
    found = render(service.list_deliveries(status=None, webhook_id=broken, cursor=None, limit="10"))
    for delivery in found["data"]:
        # Recorded and retried each time (and dead-lettered after the last attempt).
        assert delivery["attempts"] >= 2
        assert delivery["last_error"] == "RuntimeError: a bug in a transport"


def test_a_storm_of_wakes_costs_a_bounded_number_of_claims(service: Service) -> None:
    """Wakes come from commits and, on PostgreSQL, from anyone who can ``NOTIFY``: however
    many arrive, the deliverer claims at most once per ``MIN_CLAIM_GAP_S``."""
    from birdbalance.runtime.deliverer import MIN_CLAIM_GAP_S

    settings = Settings(database_url="sqlite:///unused.db", webhook_poll_interval_s=60)
    claims: list[float] = []

    async def run_write(fn: Callable[[], Any]) -> Any:
        claims.append(asyncio.get_running_loop().time())
        return fn()

    async def go() -> int:
        deliverer = Deliverer(service.store, settings, run_write)
        task = asyncio.create_task(deliverer.run())
        await asyncio.sleep(0.05)
        before = len(claims)
        storm = threading.Thread(target=lambda: [deliverer.wake() for _ in range(200_000)])
        started = asyncio.get_running_loop().time()
        storm.start()
        while storm.is_alive():
            await asyncio.sleep(0.01)
        took_s = asyncio.get_running_loop().time() - started
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        woken = len(claims) - before
        assert 1 <= woken <= (took_s + 0.05) / MIN_CLAIM_GAP_S + 2, (woken, took_s)
        return woken

    woken = asyncio.run(go())
    print(f"{woken} claims for 200,000 wakes")
