"""Transfers between two ledgers: both legs or neither, under the source's floor,
idempotent, one asset and one mode, never an overdraft under concurrency, and proved by
``verify``."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from birdbalance.errors import (
    IdempotencyConflict,
    InvalidParameter,
    NotEnoughBalance,
    NotFound,
    ServiceError,
)
from birdbalance.ledger import EntryKind, Mode, Payment
from birdbalance.records import Idempotency, NewAccount, NewEntry, NewHold, NewTransfer
from birdbalance.settings import Settings
from birdbalance.storage import Store, open_store
from tests.databases import raw_execute
from tests.servers import ADMIN_TOKEN, Admin, Server, cli


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(Settings(database_url=database_url))
    s.migrate()
    yield s
    s.close()


def _account(store: Store, asset: str = "EUR", payment: Payment = Payment.PREPAID, **kw) -> str:  # type: ignore[no-untyped-def]
    new = NewAccount(None, payment, asset, 6, kw.get("credit_limit_minor"), {})
    return store.create_account(new, None).id


def _fund(store: Store, account: str, amount: int, key: str) -> None:
    new = NewEntry(account, Mode.LIVE, EntryKind.TOPUP, amount, None, None, {})
    store.append_entry(new, Idempotency(key, "fp-" + key))


def _move(store: Store, source: str, target: str, amount: int, key: str, **kw):  # type: ignore[no-untyped-def]
    new = NewTransfer(source, target, kw.get("mode", Mode.LIVE), amount, None, {})
    return store.transfer(new, Idempotency(key, kw.get("fp", "fp-" + key)))


def _live(store: Store, account: str) -> int:
    return store.get_account(account).live.balance_minor


def test_a_transfer_moves_both_legs_and_replays(store: Store) -> None:
    a, b = _account(store), _account(store)
    _fund(store, a, 100, "fund")
    result = _move(store, a, b, 30, "t1")
    assert result.transfer.id.startswith("trf_") and not result.replayed
    out_leg, in_leg = result.legs
    assert (out_leg.entry.account_id, out_leg.entry.amount_minor) == (a, -30)
    assert (in_leg.entry.account_id, in_leg.entry.amount_minor) == (b, 30)
    assert out_leg.entry.kind is in_leg.entry.kind is EntryKind.TRANSFER
    assert (out_leg.entry.balance_after_minor, in_leg.entry.balance_after_minor) == (70, 30)
    again = _move(store, a, b, 30, "t1")
    assert again.replayed and again.transfer == result.transfer
    with pytest.raises(IdempotencyConflict):
        _move(store, a, b, 31, "t1", fp="other")
    # Back again: a second transfer, never an edit of the first.
    _move(store, b, a, 30, "t2")
    assert store.get_transfer(result.transfer.id).transfer == result.transfer
    page = store.list_transfers(a, None, 10)
    assert [t.amount_minor for t in page.items] == [30, 30] and page.next_cursor is None
    assert store.list_transfers(None, None, 1).next_cursor is not None
    assert store.verify() == []


def test_refusals_write_nothing(store: Store) -> None:
    a, b = _account(store), _account(store)
    dollars = _account(store, "USD")
    _fund(store, a, 100, "fund")
    with pytest.raises(NotEnoughBalance):
        _move(store, a, b, 101, "too-much")
    with pytest.raises(InvalidParameter, match="one asset"):
        _move(store, a, dollars, 1, "assets")
    with pytest.raises(InvalidParameter, match="two different accounts"):
        _move(store, a, a, 1, "same")
    with pytest.raises(NotFound):
        _move(store, a, "acc_" + "0" * 26, 1, "nobody")
    with pytest.raises(NotEnoughBalance):
        _move(store, a, b, 1, "test-mode", mode=Mode.TEST)  # the test ledger is empty
    # What a pending hold reserves cannot leave either.
    hold = NewHold(a, Mode.LIVE, 90, "2999-01-01T00:00:00.000000Z", None, {})
    store.create_hold(hold, Idempotency("hold", "fp-hold"))
    with pytest.raises(NotEnoughBalance):
        _move(store, a, b, 11, "past-the-hold")
    assert store.list_transfers(None, None, 10).items == []
    assert store.verify() == []
    # A refused key was not used: it can carry the transfer once it fits.
    _move(store, a, b, 10, "too-much", fp="fp-too-much")


def test_a_postpaid_source_may_use_its_credit(store: Store) -> None:
    source = _account(store, payment=Payment.POSTPAID, credit_limit_minor=50)
    target = _account(store)
    _move(store, source, target, 50, "credit")
    with pytest.raises(NotEnoughBalance):
        _move(store, source, target, 1, "past-credit")
    assert store.verify() == []


def test_verify_finds_a_transfer_whose_legs_are_not_a_transfer(
    store: Store, database_url: str
) -> None:
    a, b = _account(store), _account(store)
    _fund(store, a, 100, "fund-a")
    _fund(store, b, 10, "fund-b")
    _move(store, a, b, 10, "t1")
    assert store.verify() == []
    charge = NewEntry(a, Mode.LIVE, EntryKind.CHARGE, 5, None, None, {})
    out_leg = store.append_entry(charge, Idempotency("c", "fp-c")).entry.id
    in_leg = store.list_entries(b, Mode.LIVE, None, 10).items[-1].id  # its top-up
    # A transfer forged behind birdbalance's back: its "legs" are a charge and a top-up
    # of other amounts.
    raw_execute(
        database_url,
        "INSERT INTO transfers (id, from_account, to_account, mode, amount_minor, from_entry,"
        f" to_entry, reference, metadata, created_at) VALUES ('trf_{'F' * 26}', '{a}', '{b}',"
        f" 'live', 7, '{out_leg}', '{in_leg}', NULL, '{{}}', '2026-01-01T00:00:00.000000Z')",
    )
    problems = store.verify()
    assert problems == [f"transfer trf_{'F' * 26}: its legs are not its two ledgers'"], problems


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_transfers_racing_charges_never_overdraw(store: Store, database_url: str) -> None:
    """Transfers out of A and charges on A race from threads with stores of their own
    (own connections): A, funded for exactly 40 units, ends at 0, never below."""
    a, b = _account(store), _account(store)
    _fund(store, a, 40, "fund")
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        own = open_store(Settings(database_url=database_url))
        try:
            for i in range(8):
                key = f"w{n}-{i}"
                try:
                    if (n + i) % 2:
                        _move(own, a, b, 1, key)
                        what = "transfer"
                    else:
                        new = NewEntry(a, Mode.LIVE, EntryKind.CHARGE, 1, None, None, {})
                        own.append_entry(new, Idempotency(key, "fp"))
                        what = "charge"
                except NotEnoughBalance:
                    what = "refused"
                except ServiceError as exc:  # busy: the write did not happen
                    what = f"error {exc.status_code}"
                with lock:
                    outcomes.append(what)
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = outcomes.count("transfer") + outcomes.count("charge")
    assert done == 40, outcomes
    assert outcomes.count("refused") == 64 - 40, outcomes
    assert _live(store, a) == 0
    assert _live(store, b) == outcomes.count("transfer")
    assert store.verify() == []


def _transfer(admin: Admin, idem: str, **body: Any) -> httpx.Response:
    return admin.http.post("/v1/transfers", json=body, headers={"Idempotency-Key": idem})


def test_the_transfer_api(server: Server, admin: Admin) -> None:
    a, b = admin.account()["id"], admin.account()["id"]
    dollars = admin.account(type_="dollars")["id"]
    admin.topup(a, "10")
    r = _transfer(admin, "http-1", **{"from": a, "to": b, "amount": "2.5", "reference": "r1"})
    assert r.status_code == 201, r.text
    body = r.json()
    transfer = body["transfer"]
    assert transfer["id"].startswith("trf_") and (transfer["from"], transfer["to"]) == (a, b)
    assert (transfer["amount"], transfer["mode"], transfer["reference"]) == ("2.5", "live", "r1")
    legs = body["legs"]
    assert [leg["entry"]["kind"] for leg in legs] == ["transfer", "transfer"]
    assert [leg["entry"]["amount"] for leg in legs] == ["-2.5", "2.5"]
    assert [leg["balance"]["amount"] for leg in legs] == ["7.5", "2.5"]
    assert [leg["entry"]["id"] for leg in legs] == [transfer["from_entry"], transfer["to_entry"]]
    again = _transfer(admin, "http-1", **{"from": a, "to": b, "amount": "2.5", "reference": "r1"})
    assert again.status_code == 201 and again.json() == body
    other = _transfer(admin, "http-1", **{"from": a, "to": b, "amount": "2"})
    assert other.status_code == 409
    assert admin.http.get(f"/v1/transfers/{transfer['id']}").json() == body
    listed = admin.http.get("/v1/transfers", params={"account": b}).json()
    assert [t["id"] for t in listed["data"]] == [transfer["id"]]
    entries = admin.http.get(f"/v1/accounts/{a}/entries", params={"kind": "transfer"}).json()
    assert [e["id"] for e in entries["data"]] == [transfer["from_entry"]]

    def refused(idem: str, **body: object) -> dict[str, object]:
        r = _transfer(admin, idem, **body)
        assert r.status_code in (404, 422), r.text
        (error,) = r.json()["errors"]
        return {"status": r.status_code, "code": error["code"], "parameter": error["parameter"]}

    assert refused("x1", **{"from": a, "to": b, "amount": "7.51"})["code"] == 25
    assert refused("x2", **{"from": a, "to": dollars, "amount": "1"})["parameter"] == "to"
    assert refused("x3", **{"from": a, "to": a, "amount": "1"})["parameter"] == "to"
    assert refused("x4", **{"from": a, "to": b, "amount": "0"})["parameter"] == "amount"
    assert refused("x5", **{"from": a, "to": b, "amount": "-1"})["parameter"] == "amount"
    assert refused("x6", **{"from": a, "to": "acc_nope", "amount": "1"})["status"] == 404
    assert refused("x7", **{"from": a, "to": b, "amount": "1", "mode": "test"})["code"] == 25
    assert refused("x8", **{"from": a, "amount": "1"})["status"] == 422
    missing_key = admin.http.post("/v1/transfers", json={"from": a, "to": b, "amount": "1"})
    assert missing_key.status_code == 422, missing_key.text
    assert missing_key.json()["errors"][0]["parameter"] == "Idempotency-Key"
    # The bare entry routes do not post transfer legs.
    assert admin.http.post(f"/v1/accounts/{a}/transfers", json={"amount": "1"}).status_code in (
        404,
        405,
    )
    live = admin.http.get(f"/v1/accounts/{a}").json()["balances"]["live"]
    assert live["amount"] == "7.5"


def test_the_transfer_command(database_url: str) -> None:
    def run(*args: str) -> dict[str, Any]:
        result = cli(*args, "--json", db_url=database_url)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    a = run("accounts", "create", "--payment", "prepaid", "--type", "euros")["id"]
    b = run("accounts", "create", "--payment", "prepaid", "--type", "euros")["id"]
    run("topup", a, "5")
    moved = run("transfer", a, b, "1.25", "--reference", "inv-1")
    assert [leg["balance"]["amount"] for leg in moved["legs"]] == ["3.75", "1.25"]
    # A re-run with the same reference replays it: nothing moves twice.
    assert run("transfer", a, b, "1.25", "--reference", "inv-1") == moved
    listed = run("transfers", "--account", a)
    assert [t["id"] for t in listed["data"]] == [moved["transfer"]["id"]]
    refused = cli("transfer", a, b, "100", db_url=database_url)
    assert refused.returncode != 0 and "balance" in refused.stderr.lower(), refused.stderr
    table = cli("transfers", db_url=database_url)
    assert moved["transfer"]["id"] in table.stdout
    audit = run("audit", "--action", "birdbalance transfer")
    assert [r["target"] for r in audit["data"]][:1] == [a], audit


def test_two_nodes_race_transfers_both_ways_against_charges(
    database_url: str, tmp_path: Path
) -> None:
    """Two server processes on one database; 24 clients send transfers A->B and B->A and
    charges on both, spread over both nodes. Neither ledger ever goes below zero, every
    acknowledged operation is in the balances, and verify is clean."""
    first = Server(db_url=database_url, log_path=tmp_path / "node1.log").start()
    second = Server(db_url=database_url, log_path=tmp_path / "node2.log")
    try:
        second.start()
        admin = Admin(first.url)
        a, b = admin.account()["id"], admin.account()["id"]
        admin.topup(a, "15")
        admin.topup(b, "15")
        acknowledged: list[str] = []

        async def client(n: int) -> None:
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            nodes = [
                httpx.AsyncClient(base_url=s.url, headers=headers, timeout=60)
                for s in (first, second)
            ]
            try:
                for i in range(10):
                    node = nodes[(n + i) % 2]
                    idem = {"Idempotency-Key": f"race-{n}-{i}"}
                    op = ("a->b", "b->a", "charge a", "charge b")[(n + i) % 4]
                    if op.startswith("charge"):
                        target = a if op.endswith("a") else b
                        r = await node.post(
                            f"/v1/accounts/{target}/charges", json={"amount": "1"}, headers=idem
                        )
                    else:
                        source, to = (a, b) if op == "a->b" else (b, a)
                        body = {"from": source, "to": to, "amount": "1"}
                        r = await node.post("/v1/transfers", json=body, headers=idem)
                    assert r.status_code in (201, 422), r.text
                    if r.status_code == 201:
                        acknowledged.append(op)
                    else:
                        assert r.json()["errors"][0]["code"] == 25, r.text
            finally:
                for node in nodes:
                    await node.aclose()

        async def everyone() -> None:
            await asyncio.gather(*(client(n) for n in range(24)))

        asyncio.run(everyone())
        ops = acknowledged
        balances = {
            account: Decimal(
                admin.http.get(f"/v1/accounts/{account}").json()["balances"]["live"]["amount"]
            )
            for account in (a, b)
        }
        expected_a = 15 - ops.count("a->b") + ops.count("b->a") - ops.count("charge a")
        expected_b = 15 - ops.count("b->a") + ops.count("a->b") - ops.count("charge b")
        assert (balances[a], balances[b]) == (expected_a, expected_b)
        assert balances[a] >= 0 and balances[b] >= 0
        assert ops.count("charge a") + ops.count("charge b") == 30 - balances[a] - balances[b]
        admin.http.close()
    finally:
        second.stop()
        first.stop()
    verified = cli("verify", db_url=database_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
