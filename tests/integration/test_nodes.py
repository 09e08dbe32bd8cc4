"""Several server processes on one database: mixed load, workers, graceful shutdown."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.databases import LATEST, raw_execute
from tests.servers import ADMIN_TOKEN, Admin, Server, cli

ACCOUNTS = 4
CLIENTS = 32
OPERATIONS_PER_CLIENT = 20
REQUESTS = 300


@pytest.fixture
def two_nodes(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    first = Server(db_url=database_url, log_path=tmp_path / "node1.log").start()
    second = Server(db_url=database_url, log_path=tmp_path / "node2.log")
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


@dataclass
class Ledger:
    """What the clients were told: the sum of acknowledged amounts, the charges to refund."""

    acknowledged: Decimal = Decimal(0)
    charges: list[tuple[str, Decimal]] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)


async def _client(
    n: int, nodes: tuple[Server, Server], accounts: list[str], ledgers: dict[str, Ledger]
) -> list[int]:
    rng = random.Random(n)
    statuses = []
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    clients = [httpx.AsyncClient(base_url=node.url, headers=headers, timeout=60) for node in nodes]
    try:
        for i in range(OPERATIONS_PER_CLIENT):
            client = clients[rng.randrange(2)]
            aid = rng.choice(accounts)
            ledger = ledgers[aid]
            idem = {"Idempotency-Key": f"mixed-{n}-{i}"}
            amount = Decimal(rng.randint(1, 500)) / 100
            op = rng.choice(["topup", "charge", "charge", "refund", "hold", "capture"])
            if op == "refund" and ledger.charges:
                charge_id, charged = rng.choice(ledger.charges)
                body = {"amount": str(min(amount, charged)), "charge": charge_id}
                r = await client.post(f"/v1/accounts/{aid}/refunds", json=body, headers=idem)
                if r.status_code == 201:
                    ledger.acknowledged += Decimal(r.json()["entry"]["amount"])
            elif op == "hold":
                body = {"amount": str(amount)}
                r = await client.post(f"/v1/accounts/{aid}/holds", json=body, headers=idem)
                if r.status_code == 201:
                    ledger.holds.append(r.json()["hold"]["id"])
            elif op == "capture" and ledger.holds:
                hold_id = ledger.holds.pop(rng.randrange(len(ledger.holds)))
                r = await client.post(f"/v1/holds/{hold_id}/capture", json={}, headers=idem)
                if r.status_code == 200:
                    ledger.acknowledged += Decimal(r.json()["entry"]["amount"])
            else:
                kind = "topups" if op == "topup" else "charges"
                body = {"amount": str(amount)}
                r = await client.post(f"/v1/accounts/{aid}/{kind}", json=body, headers=idem)
                if r.status_code == 201:
                    entry = r.json()["entry"]
                    ledger.acknowledged += Decimal(entry["amount"])
                    if kind == "charges":
                        ledger.charges.append((entry["id"], -Decimal(entry["amount"])))
            statuses.append(r.status_code)
            if r.status_code == 422:
                assert r.json()["errors"][0]["code"] in (10, 25), r.text
    finally:
        for client in clients:
            await client.aclose()
    return statuses


async def _mixed_load(
    nodes: tuple[Server, Server], accounts: list[str], ledgers: dict[str, Ledger]
) -> list[int]:
    results = await asyncio.gather(*(_client(n, nodes, accounts, ledgers) for n in range(CLIENTS)))
    return [status for statuses in results for status in statuses]


def test_two_nodes_under_mixed_load_agree_with_every_acknowledgement(
    two_nodes: tuple[Server, Server], database_url: str
) -> None:
    admin = Admin(two_nodes[0].url)
    accounts = [admin.account("prepaid", "euros")["id"] for _ in range(ACCOUNTS)]
    ledgers = {aid: Ledger() for aid in accounts}
    for aid in accounts:
        ledgers[aid].acknowledged += Decimal(admin.topup(aid, "20")["entry"]["amount"])
    statuses = asyncio.run(_mixed_load(two_nodes, accounts, ledgers))
    assert len(statuses) == CLIENTS * OPERATIONS_PER_CLIENT
    assert set(statuses) <= {200, 201, 409, 422}, sorted(set(statuses))
    assert statuses.count(201) > len(statuses) // 3  # the load really wrote
    other = Admin(two_nodes[1].url)
    for aid, ledger in ledgers.items():
        for node in (admin, other):
            live = node.http.get(f"/v1/accounts/{aid}").json()["balances"]["live"]
            assert Decimal(live["amount"]) == ledger.acknowledged, aid
            assert Decimal(live["available"]) >= 0
    admin.http.close()
    other.http.close()
    verified = cli("verify", db_url=database_url)
    assert verified.returncode == 0, verified.stderr
    assert f"ok: {2 * ACCOUNTS} ledgers verified" in verified.stdout


def test_workers_share_the_load_and_shut_down_gracefully(database_url: str, tmp_path: Path) -> None:
    srv = Server(db_url=database_url, log_path=tmp_path / "workers.log", extra_args=("--no-demo",))
    srv.extra_args = ("--no-demo", "--workers", "2")
    srv.start()
    admin = Admin(srv.url)
    aid = admin.account()["id"]
    admin.topup(aid, "1000")

    async def load() -> list[httpx.Response | BaseException]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        # One connection per request and all of them open before the signal, so each
        # request is in flight when it arrives (keep-alive reuse would race the close).
        limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=srv.url, headers=headers, timeout=60, limits=limits
        ) as client:

            async def charge(i: int) -> httpx.Response:
                return await client.post(
                    f"/v1/accounts/{aid}/charges",
                    json={"amount": "1"},
                    headers={"Idempotency-Key": f"graceful-{i}"},
                )

            tasks = [asyncio.create_task(charge(i)) for i in range(REQUESTS)]
            await asyncio.sleep(0.2)
            assert srv.process is not None
            srv.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*tasks, return_exceptions=True)

    answers = asyncio.run(load())
    assert srv.process is not None and srv.process.wait(timeout=30) == 0
    admin.http.close()
    ok = [a for a in answers if isinstance(a, httpx.Response)]
    assert all(r.status_code == 201 for r in ok), {r.status_code for r in ok}
    unanswered = [i for i, a in enumerate(answers) if not isinstance(a, httpx.Response)]
    # A request the server never read (still in the kernel's accept queue at the signal)
    # is refused or reset; one it read is finished and answered, never cut off.
    for i in unanswered:
        assert isinstance(answers[i], httpx.ConnectError | httpx.ReadError), repr(answers[i])
    restarted = Server(db_url=database_url, log_path=tmp_path / "after.log").start()
    try:
        after = Admin(restarted.url)
        live = after.http.get(f"/v1/accounts/{aid}").json()["balances"]["live"]
        # Nothing was written without its answer reaching the client...
        assert live["entries"] == 1 + len(ok) and Decimal(live["amount"]) == 1000 - len(ok)
        # ...and retrying the unanswered ones with their keys completes the batch once.
        for i in unanswered:
            r = after.post(aid, "charges", f"graceful-{i}", amount="1")
            assert r.status_code == 201, r.text
        for i in range(3):
            assert after.post(aid, "charges", f"graceful-{i}", amount="1").status_code == 201
        live = after.http.get(f"/v1/accounts/{aid}").json()["balances"]["live"]
        assert live["entries"] == 1 + REQUESTS and Decimal(live["amount"]) == 1000 - REQUESTS
        after.http.close()
    finally:
        restarted.stop()
    assert cli("verify", db_url=database_url).returncode == 0


def test_readiness_follows_the_schema_liveness_does_not(database_url: str, tmp_path: Path) -> None:
    srv = Server(db_url=database_url, log_path=tmp_path / "probes.log").start()
    try:
        ready = httpx.get(srv.url + "/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready" and ready.json()["schema_version"] == LATEST

        raw_execute(
            database_url,
            f"INSERT INTO schema_migrations VALUES ({LATEST + 1}, 'x', '2030-01-01')",
        )
        stale = httpx.get(srv.url + "/readyz")
        assert stale.status_code == 503
        assert "run `birdbalance migrate`" in stale.json()["errors"][0]["description"]
        assert httpx.get(srv.url + "/healthz").status_code == 200
    finally:
        srv.stop()


def test_an_unreachable_postgresql_is_a_503_not_a_500() -> None:
    """GET /balance on a node whose database refuses connections: a retryable 503."""
    from birdbalance.http.balance import BalanceEndpoint
    from birdbalance.settings import Settings
    from birdbalance.storage import open_store

    # Nothing listens on port 1, so every connection attempt is refused at once.
    url = "postgresql://birdbalance@127.0.0.1:1/nothing"
    store = open_store(Settings(database_url=url, database_timeout_s=1))
    endpoint = BalanceEndpoint(store.hasher.digest, store.lookup_balance)
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "method": "GET",
        "headers": [(b"authorization", b"AccessKey " + b"k" * 25)],
        "query_string": b"",
    }
    asyncio.run(endpoint(scope, send))  # type: ignore[arg-type]
    store.close()
    assert sent[0]["status"] == 503
    assert (b"retry-after", b"1") in sent[0]["headers"]  # type: ignore[operator]
    assert b'"code":99' in sent[1]["body"]  # type: ignore[operator]
