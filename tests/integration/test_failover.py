"""A PostgreSQL cluster under Patroni loses its primary twice while two birdbalance nodes
take mixed writes: the nodes find the new primary by themselves (a multi-host URL with
``target_session_attrs=read-write``), every acknowledged write is there exactly once,
retries with the same Idempotency-Key complete the rest, and ``verify`` is clean.

The unavailability window each failover caused is printed (``pytest -s`` shows it) and
bounded, so that a regression in reconnecting fails here."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.databases import PrivateCluster, in_ci
from tests.patroni import PatroniCluster, binaries_installed
from tests.servers import ADMIN_TOKEN, Admin, Server, cli

ACCOUNTS = 3
TIMEOUT_S = 2.0
#: From the SIGKILL to the first write a node completes again, at most. Patroni fails over
#: in about 2-3 s here; the rest is slack for two busy cores.
MAX_WINDOW_S = 30.0


@pytest.fixture
def patroni() -> Iterator[PatroniCluster]:
    if not binaries_installed():
        if in_ci():
            raise AssertionError("patroni and etcd are not installed: run scripts/bootstrap dev")
        pytest.skip("patroni and etcd are not installed (scripts/bootstrap dev installs them)")
    cluster = PatroniCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@dataclass
class Sent:
    """One write as a client sent it; ``entry`` is set only by an acknowledgement."""

    idem: str
    account: str
    kind: str  # "topups" or "charges"
    amount: str
    entry: str | None = None


@dataclass
class Node:
    """A birdbalance node under load: writes and /balance reads, with their timings."""

    server: Server
    name: str
    accounts: list[str]
    key: str
    sent: list[Sent] = field(default_factory=list)
    #: (monotonic time, status) of every write and read answered or failed.
    writes: list[tuple[float, int]] = field(default_factory=list)
    reads: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def write_loop(self) -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=self.server.url, headers=headers, timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                account = self.accounts[n % len(self.accounts)]
                kind = "topups" if n % 3 == 0 else "charges"
                sent = Sent(
                    f"{self.name}-{n}", account, kind, "0.05" if kind == "topups" else "0.01"
                )
                self.sent.append(sent)
                try:
                    r = client.post(
                        f"/v1/accounts/{account}/{kind}",
                        json={"amount": sent.amount},
                        headers={"Idempotency-Key": sent.idem},
                    )
                    status = r.status_code
                except httpx.TransportError:
                    status = 0
                if status == 201:
                    sent.entry = r.json()["entry"]["id"]
                else:
                    assert status in (0, 503), (status, r.text)
                    time.sleep(0.05)
                self.writes.append((time.monotonic(), status))

    def read_loop(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    r = client.get("/balance", headers={"Authorization": f"AccessKey {self.key}"})
                    status = r.status_code
                except httpx.TransportError:
                    status = 0
                assert status in (0, 200, 503), status
                self.reads.append((time.monotonic(), status))
                time.sleep(0.02)

    def acknowledged_since(self, at: float, kind: str = "writes") -> int:
        return sum(1 for t, s in getattr(self, kind) if t >= at and s in (200, 201))

    def window_s(self, killed_at: float, kind: str) -> float:
        """From the kill to the first success after the last failure it caused."""
        answered = [(t, s) for t, s in getattr(self, kind) if t >= killed_at]
        failures = [t for t, s in answered if s not in (200, 201)]
        if not failures:
            return 0.0
        after = [t for t, s in answered if t > failures[-1] and s in (200, 201)]
        assert after, f"{self.name}: no {kind} succeeded after the failover"
        return after[0] - killed_at


def _wait(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout_s:.0f} s for {what}")


def _crash(patroni: PatroniCluster, nodes: list[Node], n: int) -> dict[str, float]:
    """Kill the primary's postmaster under load; return how long each part was down."""
    started = time.monotonic()
    _wait(
        lambda: all(node.acknowledged_since(started) >= 20 for node in nodes),
        30,
        "writes on both nodes before the crash",
    )
    leader = patroni.leader()
    assert leader is not None
    killed_at = time.monotonic()
    patroni.kill_postmaster(leader)
    _wait(lambda: patroni.leader() not in (None, leader), 60, "Patroni to promote another")
    promoted_at = time.monotonic()
    _wait(
        lambda: all(
            node.acknowledged_since(promoted_at) >= 20
            and node.acknowledged_since(promoted_at, "reads") >= 5
            for node in nodes
        ),
        60,
        "both nodes to write and read again, without a restart",
    )
    window = {"promoted": promoted_at - killed_at}
    for node in nodes:
        window[f"{node.name} writes"] = node.window_s(killed_at, "writes")
        window[f"{node.name} reads"] = node.window_s(killed_at, "reads")
    print(f"\ncrash {n} of pg{leader}: " + ", ".join(f"{k} {v:.2f} s" for k, v in window.items()))
    # The old primary rejoins (pg_rewind) before the next crash, as an operator's cluster
    # would have it: a sync standby to fail over to without losing a write.
    patroni.wait_healthy(90)
    return window


def test_two_nodes_ride_out_two_primary_crashes(patroni: PatroniCluster, tmp_path: Path) -> None:
    env = {"BIRDBALANCE_DATABASE_TIMEOUT_S": str(TIMEOUT_S)}
    servers = [
        Server(db_url=patroni.url, log_path=tmp_path / f"node{i}.log", env=env) for i in (1, 2)
    ]
    servers[0].start()
    servers[1].start()
    admin = Admin(servers[0].url)
    threads: list[threading.Thread] = []
    nodes: list[Node] = []
    try:
        accounts = [admin.account()["id"] for _ in range(ACCOUNTS)]
        for account in accounts:
            admin.topup(account, "1000")
        key = admin.key(accounts[0])["key"]
        nodes = [Node(s, f"node{i}", accounts, key) for i, s in enumerate(servers, 1)]
        for node in nodes:
            threads += [
                threading.Thread(target=node.write_loop, daemon=True),
                threading.Thread(target=node.read_loop, daemon=True),
            ]
        for thread in threads:
            thread.start()
        windows = [_crash(patroni, nodes, n) for n in (1, 2)]
        for node in nodes:
            node.stop.set()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive()
        for window in windows:
            assert max(window.values()) < MAX_WINDOW_S, windows

        # Every key sent again: an acknowledged one answers with its own entry (it is
        # there, once), an unacknowledged one is written now or replays what did commit.
        sent = [s for node in nodes for s in node.sent]
        unacknowledged = [s for s in sent if s.entry is None]
        assert unacknowledged, "the crashes cost no write: the test proved nothing"
        for s in sent:
            again = admin.post(s.account, s.kind, idem=s.idem, amount=s.amount)
            assert again.status_code == 201, again.text
            if s.entry is not None:
                assert again.json()["entry"]["id"] == s.entry, s
        other = Admin(servers[1].url)
        for account in accounts:
            mine = [s for s in sent if s.account == account]
            expected = Decimal("1000") + sum(
                (Decimal(s.amount) if s.kind == "topups" else -Decimal(s.amount)) for s in mine
            )
            for client in (admin, other):
                live = client.http.get(f"/v1/accounts/{account}").json()["balances"]["live"]
                assert Decimal(live["amount"]) == expected, account
                assert live["entries"] == len(mine) + 1, account
        other.http.close()
    finally:
        for node in nodes:
            node.stop.set()
        for server in servers:
            server.stop()
        admin.http.close()
    verified = cli("verify", db_url=patroni.url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    unconfirmed = 0
    for server in servers:
        log = server.log_path.read_text()
        assert "Traceback" not in log, log[-3000:]
        unconfirmed += log.count("was not confirmed by a synchronous standby")
    print(f"writes refused as unconfirmed by a standby: {unconfirmed}")


def _sql(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def test_a_commit_no_standby_confirmed_is_not_acknowledged(
    private_cluster: PrivateCluster, tmp_path: Path
) -> None:
    """PostgreSQL reports success with a WARNING when a commit's wait for a synchronous
    standby is cancelled (here by the statement timeout): that write answers 503, and the
    retry with its key finds it once the wait is over, never a second entry."""
    # The private cluster runs with synchronous_commit=off; this database's sessions wait
    # for a standby (once one is named).
    _sql(private_cluster.url, "ALTER DATABASE postgres SET synchronous_commit = on")
    server = Server(
        db_url=private_cluster.url,
        log_path=tmp_path / "server.log",
        env={"BIRDBALANCE_DATABASE_TIMEOUT_S": "1"},
    ).start()
    admin = Admin(server.url)
    try:
        account = admin.account()["id"]
        admin.topup(account, "10")
        # A synchronous standby that never comes: every commit waits for it.
        _sql(
            private_cluster.url,
            "ALTER SYSTEM SET synchronous_standby_names = 'ghost'",
            "SELECT pg_reload_conf()",
        )
        time.sleep(0.5)
        charged = admin.post(account, "charges", idem="unconfirmed", amount="1")
        assert charged.status_code == 503, charged.text
        assert "not confirmed by a standby" in charged.text
        assert charged.headers["Retry-After"]
        _sql(
            private_cluster.url,
            "ALTER SYSTEM RESET synchronous_standby_names",
            "SELECT pg_reload_conf()",
        )
        time.sleep(0.5)
        again = admin.post(account, "charges", idem="unconfirmed", amount="1")
        assert again.status_code == 201, again.text
        live = admin.http.get(f"/v1/accounts/{account}").json()["balances"]["live"]
        assert (live["amount"], live["entries"]) == ("9", 2)
    finally:
        admin.http.close()
        server.stop()
    assert "was not confirmed by a synchronous standby" in server.log_path.read_text()
