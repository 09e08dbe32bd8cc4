"""Alerts leave in milliseconds: the commit that raises an event wakes the deliverer.

The servers here poll for due deliveries only every 30 s, so an alert that arrives within
a second can only have been woken: by the write's own commit in the serving process (both
engines), or by PostgreSQL's ``NOTIFY`` when another process wrote (the CLI here, another
node in production). Polling stays the fallback, and a lost listening connection is
replaced and catches up on what it missed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.receivers import Receiver
from tests.servers import Admin, Server, cli

#: Far longer than any wait below: only a wake can deliver in time.
SLOW_POLL = {"BIRDBALANCE_WEBHOOK_POLL_INTERVAL_S": "30"}
#: A woken delivery arrives in milliseconds; this is slack for a loaded CI machine.
WOKEN_WITHIN_S = 2.0


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = Server(db_url=database_url, log_path=tmp_path / "node.log", env=SLOW_POLL)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def admin(node: Server) -> Iterator[Admin]:
    client = Admin(node.url)
    yield client
    client.http.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    yield found
    found.stop()


def _watched(admin: Admin, receiver: Receiver) -> str:
    """An account at 100 with a rule below 50 and a subscription to its events."""
    aid = admin.account("prepaid", "euros")["id"]
    admin.topup(aid, "100")
    assert admin.http.post(f"/v1/accounts/{aid}/alerts", json={"below": "50"}).status_code == 201
    hook = admin.http.post("/v1/webhooks", json={"url": receiver.url, "account": aid})
    assert hook.status_code == 201, hook.text
    time.sleep(0.3)  # the deliverer's first claim (at its start) is behind it
    return aid


def _listeners(database_url: str, terminate: bool = False) -> int:
    """This database's listening connections (terminated, if asked, as a network fault or
    a database restart would)."""
    what = "pg_terminate_backend(pid)" if terminate else "pid"
    with psycopg.connect(database_url, autocommit=True) as pg:
        rows = pg.execute(
            f"SELECT {what} FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'birdbalance-listen'"
        ).fetchall()
    return len(rows)


def _arrival_s(receiver: Receiver, count: int, since: float) -> float:
    arrived = receiver.wait_for(count, timeout_s=10)
    return max(r.at for r in arrived) - since


def test_the_write_that_raises_an_alert_wakes_its_own_deliverer(
    admin: Admin, receiver: Receiver
) -> None:
    aid = _watched(admin, receiver)
    latencies_s = []
    for n in range(6):  # low, recovered, low, ...: one event per write
        kind = "charges" if n % 2 == 0 else "topups"
        written = time.monotonic()
        assert admin.post(aid, kind, amount="60").status_code == 201
        latencies_s.append(_arrival_s(receiver, n + 1, written))
    print(f"write to receipt: {[round(1000 * s) for s in latencies_s]} ms")
    assert max(latencies_s) < WOKEN_WITHIN_S, latencies_s


def _delivered(admin: Admin) -> list[dict[str, object]]:
    found: list[dict[str, object]] = admin.http.get(
        "/v1/deliveries", params={"status": "delivered"}
    ).json()["data"]
    return found


def test_a_redelivery_is_sent_at_once(admin: Admin, receiver: Receiver) -> None:
    aid = _watched(admin, receiver)
    assert admin.post(aid, "charges", amount="60").status_code == 201
    [first] = receiver.wait_for(1, timeout_s=10)
    deadline = time.monotonic() + 10
    while not (delivered := _delivered(admin)) and time.monotonic() < deadline:
        time.sleep(0.01)  # the receiver answered; the result is being recorded
    [delivery] = delivered
    asked = time.monotonic()
    again = admin.http.post(f"/v1/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 200, again.text
    deadline = time.monotonic() + 10
    while len(receiver.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(receiver.received) == 2, receiver.received
    assert receiver.received[1].event_id == first.event_id
    assert receiver.received[1].at - asked < WOKEN_WITHIN_S


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_another_process_wakes_every_node_through_notify(
    admin: Admin, receiver: Receiver, database_url: str
) -> None:
    aid = _watched(admin, receiver)
    # The CLI writes in this process, not the server's: only NOTIFY can wake the server.
    written = time.monotonic()
    charged = cli("charge", aid, "60", db_url=database_url)
    assert charged.returncode == 0, charged.stderr
    assert _arrival_s(receiver, 1, written) < WOKEN_WITHIN_S


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_lost_listening_connection_is_replaced_and_catches_up(
    node: Server, admin: Admin, receiver: Receiver, database_url: str
) -> None:
    aid = _watched(admin, receiver)
    assert _listeners(database_url) == 1
    assert _listeners(database_url, terminate=True) == 1
    # Raised while nobody listens: the new connection's first wake sends it.
    written = time.monotonic()
    assert cli("charge", aid, "60", db_url=database_url).returncode == 0
    assert _arrival_s(receiver, 1, written) < 2 * WOKEN_WITHIN_S
    assert _listeners(database_url) == 1
    # And the replacement listens: the next alert is woken as quickly as before.
    written = time.monotonic()
    assert cli("topup", aid, "60", db_url=database_url).returncode == 0
    assert _arrival_s(receiver, 2, written) < WOKEN_WITHIN_S
    assert "listening for deliveries failed" in node.log_path.read_text()


def test_without_a_wake_the_poll_still_delivers(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    """A write no wake announces (another process on SQLite, a lost notification) waits
    for the poll; here the poll is fast, and the CLI's write arrives by it."""
    srv = Server(
        db_url=database_url,
        log_path=tmp_path / "node.log",
        env={"BIRDBALANCE_WEBHOOK_POLL_INTERVAL_S": "0.5"},
    ).start()
    try:
        admin = Admin(srv.url)
        aid = _watched(admin, receiver)
        admin.http.close()
        assert cli("charge", aid, "60", db_url=database_url).returncode == 0
        assert len(receiver.wait_for(1, timeout_s=10)) == 1
    finally:
        srv.stop()
