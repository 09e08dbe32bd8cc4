"""``POST /v1/bulk`` over HTTP, on both engines: every operation judged as its single write
would be, in order, with its own key and result; linked groups whole or not at all; dry
runs that write nothing; byte-identical replays; no overdraft and no deadlock under
concurrent bulk requests; and the edge's limits (size, count, requests in flight)."""

from __future__ import annotations

import socket
import threading
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.servers import Admin, Server, cli


def _bulk(
    admin: Admin, ops: list[dict[str, Any]], key: str | None = None, **extra: Any
) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return admin.http.post("/v1/bulk", json={"operations": ops, **extra}, headers=headers)


def _key() -> str:
    return uuid.uuid4().hex


def _op(type_: str, target: str, amount: str | None = None, **more: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"type": type_, "idempotency_key": _key(), **more}
    op["hold" if type_ in ("capture", "void") else "account"] = target
    if amount is not None:
        op["amount"] = amount
    return op


def _live(admin: Admin, aid: str) -> dict[str, Any]:
    ledger: dict[str, Any] = admin.http.get(f"/v1/accounts/{aid}").json()["balances"]["live"]
    return ledger


def test_every_kind_of_operation_gets_its_own_result_in_order(server: Server, admin: Admin) -> None:
    aid = admin.account("prepaid", "euros")["id"]
    other = admin.account("postpaid", "credits", credit_limit="50")["id"]
    admin.topup(aid, "100")
    charge = admin.post(aid, "charges", amount="10").json()["entry"]["id"]
    held = admin.post(aid, "holds", amount="5").json()["hold"]["id"]
    voided = admin.post(aid, "holds", amount="7").json()["hold"]["id"]
    ops = [
        _op("topup", aid, "1.5", reference="inv-1", metadata={"by": "bulk"}),
        _op("charge", aid, "2"),
        _op("refund", aid, "4", charge=charge),
        _op("adjustment", aid, "-0.5"),
        _op("hold", aid, "3", expires_in=60),
        _op("capture", held, "4"),
        _op("void", voided),
        _op("charge", other, "30"),  # postpaid: below zero, within its limit
        _op("charge", other, "30"),  # past the credit limit: refused alone
    ]
    r = _bulk(admin, ops, _key())
    assert r.status_code == 200, r.text
    answer = r.json()
    results = answer["results"]
    assert [x["index"] for x in results] == list(range(len(ops)))
    assert [x["status"] for x in results] == [201] * 8 + [422]
    assert results[0]["entry"]["reference"] == "inv-1"
    assert results[0]["entry"]["metadata"] == {"by": "bulk"}
    assert results[2]["entry"]["refund_of"] == charge
    assert results[4]["hold"]["status"] == "pending" and results[4]["hold"]["amount"] == "3"
    assert results[5]["hold"]["status"] == "captured" and results[5]["entry"]["amount"] == "-4"
    assert results[6]["hold"]["status"] == "voided" and "entry" not in results[6]
    assert results[8]["errors"][0]["code"] == 25 and not any(r.get("replayed") for r in results)
    # 100 - 10 + 1.5 - 2 + 4 - 0.5 - 4 (captured) = 89; held: 3 (5 and 7 were resolved)
    assert _live(admin, aid) == {**_live(admin, aid), "amount": "89", "pending": "3"}
    assert _live(admin, other)["amount"] == "-30"
    balances = {b["account_id"]: b for b in answer["balances"]}
    assert balances[aid]["amount"] == "89" and balances[aid]["available"] == "86"
    assert balances[other]["available"] == "-30" and balances[other]["type"] == "credits"
    verified = cli("verify", db_url=server.db_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_linked_group_succeeds_or_fails_as_one(admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, "10")
    admin.http.post(f"/v1/accounts/{aid}/alerts", json={"below": "5"})
    before = _live(admin, aid)
    ops = [
        _op("charge", aid, "6", linked=True),  # would cross below 5: an event
        _op("hold", aid, "1", linked=True),
        _op("charge", aid, "6"),  # not enough: the whole group goes
        _op("charge", aid, "1"),  # on its own: applied
    ]
    results = _bulk(admin, ops, _key()).json()["results"]
    assert [x["status"] for x in results] == [409, 409, 422, 201]
    assert results[0]["errors"][0] == {
        "code": 10,
        "description": "not applied: operation 2 of its linked group failed",
        "parameter": "linked",
    }
    after = _live(admin, aid)
    assert after["amount"] == "9" and after["pending"] == "0"
    assert after["entries"] == before["entries"] + 1
    assert admin.http.get(f"/v1/accounts/{aid}/holds").json()["data"] == []
    assert admin.http.get("/v1/events", params={"account": aid}).json()["data"] == []
    # The refused group's keys were never used: the same operations can go again.
    ops[2] = _op("charge", aid, "1")
    again = _bulk(admin, ops[:3], _key()).json()["results"]
    assert [x["status"] for x in again] == [201, 201, 201]
    assert not any(x["replayed"] for x in again)
    assert _live(admin, aid)["available"] == "1"
    assert [
        e["type"] for e in admin.http.get("/v1/events", params={"account": aid}).json()["data"]
    ] == ["balance.low"]


def test_an_operation_refused_while_read_fails_its_group_and_writes_nothing(admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, "10")
    ops = [
        _op("charge", aid, "1", linked=True),
        _op("charge", aid, "1.0000001"),  # too many decimals
        {**_op("charge", aid, "1"), "idempotency_key": "bad key"},  # a space
        _op("charge", "acc_nope", "1"),
    ]
    results = _bulk(admin, ops, _key()).json()["results"]
    assert [x["status"] for x in results] == [409, 422, 422, 404]
    assert results[1]["errors"][0]["parameter"] == "amount"
    assert results[2]["errors"][0]["parameter"] == "Idempotency-Key"
    assert _live(admin, aid)["amount"] == "10"


def test_a_dry_run_answers_everything_and_writes_nothing(admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, "1")
    before = _live(admin, aid)
    ops = [_op("charge", aid, "0.3") for _ in range(4)]  # can it afford four messages?
    dry = _bulk(admin, ops, dry_run=True)  # no Idempotency-Key needed
    assert dry.status_code == 200, dry.text
    answer = dry.json()
    assert answer["dry_run"] is True
    assert [x["status"] for x in answer["results"]] == [201, 201, 201, 422]
    assert answer["balances"][0]["available"] == "0.1"
    assert _live(admin, aid) == before
    # Nothing was kept: not the operations' keys, not the entries' ids.
    real = _bulk(admin, ops, _key()).json()
    assert [x["status"] for x in real["results"]] == [201, 201, 201, 422]
    assert not any(x["replayed"] for x in real["results"][:3])
    assert {x["entry"]["id"] for x in real["results"][:3]}.isdisjoint(
        {x["entry"]["id"] for x in answer["results"][:3]}
    )


def test_a_replay_answers_the_same_bytes_and_a_changed_body_conflicts(admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, "1")
    ops = [_op("charge", aid, "1"), _op("charge", aid, "1")]  # the second is refused
    key = _key()
    first = _bulk(admin, ops, key)
    admin.topup(aid, "5")  # the refused one would now be applied, if it ran again
    again = _bulk(admin, ops, key)
    assert again.status_code == 200 and again.content == first.content
    assert _live(admin, aid)["amount"] == "5"
    changed = _bulk(admin, [ops[0]], key)
    assert changed.status_code == 409
    assert changed.json()["errors"][0]["parameter"] == "Idempotency-Key"
    missing = _bulk(admin, ops)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["parameter"] == "Idempotency-Key"


def test_an_operations_key_is_the_same_request_as_its_single_writes(admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, "10")
    single = admin.post(aid, "charges", "shared-" + aid, amount="2", reference="sms-1")
    assert single.status_code == 201
    same = _op("charge", aid, "2", reference="sms-1", idempotency_key="shared-" + aid)
    other = _op("charge", aid, "3", idempotency_key="shared-" + aid)
    results = _bulk(admin, [same, other], _key()).json()["results"]
    assert results[0]["status"] == 201 and results[0]["replayed"] is True
    assert results[0]["entry"] == single.json()["entry"]
    assert results[1]["status"] == 409 and results[1]["errors"][0]["parameter"] == "Idempotency-Key"
    # And the other way: a bulk operation's key replays as a single write.
    bulk_op = _op("topup", aid, "1")
    posted = _bulk(admin, [bulk_op], _key()).json()["results"][0]["entry"]
    replay = admin.post(aid, "topups", bulk_op["idempotency_key"], amount="1")
    assert replay.status_code == 201 and replay.json()["entry"] == posted
    assert _live(admin, aid)["amount"] == "9"


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        ({"operations": []}, 422, "operations must not be empty"),
        (
            {"operations": [{"type": "void", "hold": "h", "idempotency_key": "k"}] * 1001},
            422,
            "at most 1000",
        ),
        ({}, 422, "operations is required"),
        (
            {"operations": [{"type": "spend", "account": "a", "idempotency_key": "k"}]},
            422,
            "operations[0].type",
        ),
        (
            {"operations": [{"type": "void", "hold": "h", "idempotency_key": "k", "amount": "1"}]},
            422,
            "operations[0].amount",
        ),
        (
            {"operations": [{"type": "void", "hold": "h", "idempotency_key": "k", "linked": True}]},
            422,
            "linked to nothing",
        ),
        ({"operations": "all"}, 422, "operations must be a list"),
    ],
)
def test_a_request_that_is_not_a_bulk_request_is_refused_whole(
    admin: Admin, body: dict[str, Any], status: int, said: str
) -> None:
    r = admin.http.post("/v1/bulk", json=body, headers={"Idempotency-Key": _key()})
    assert r.status_code == status, r.text
    [error] = r.json()["errors"]
    assert said in error["description"] and error["parameter"] == "operations"


def test_a_body_past_the_bulk_limit_is_refused(admin: Admin) -> None:
    from birdbalance.http.bulk import MAX_BULK_BODY_BYTES

    r = admin.http.post(
        "/v1/bulk",
        content=b" " * (MAX_BULK_BODY_BYTES + 1),
        headers={"Idempotency-Key": _key(), "Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_concurrent_bulk_requests_never_overdraw_or_deadlock(server: Server, admin: Admin) -> None:
    """Eight clients post bulks at once over the same accounts, in opposite orders:
    every request is answered, no account goes below zero, and the money adds up."""
    accounts = [admin.account()["id"] for _ in range(3)]
    for aid in accounts:
        admin.topup(aid, "20")
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        order = accounts if n % 2 == 0 else list(reversed(accounts))
        with httpx.Client(base_url=server.url, headers=admin.http.headers, timeout=60) as http:
            for _ in range(4):
                ops = [_op("charge", aid, "1") for aid in order for _ in range(5)]
                body, key = {"operations": ops}, {"Idempotency-Key": _key()}
                for _ in range(500):  # past the process's bulk slots: 503, retried
                    r = http.post("/v1/bulk", json=body, headers=key)
                    if r.status_code != 503:
                        break
                    threading.Event().wait(0.02)
                assert r.status_code == 200, r.text
                with lock:
                    answers.append(r.json())

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 32
    charged = {aid: 0 for aid in accounts}
    for answer in answers:
        for result in answer["results"]:
            assert result["status"] in (201, 422), result
            if result["status"] == 201:
                charged[result["entry"]["account_id"]] += 1
    for aid in accounts:
        ledger = _live(admin, aid)
        assert Decimal(ledger["amount"]) == 20 - charged[aid] >= 0
        assert charged[aid] == 20  # 160 charges of 1 offered for 20 per account
    assert cli("verify", db_url=server.db_url).returncode == 0


def test_bulk_requests_in_flight_are_bounded_per_process(server: Server, admin: Admin) -> None:
    """Four clients that send headers and then stall hold every bulk slot: a fifth gets
    503 at once (before its body is read), and the slots free when they go."""
    from birdbalance.http.bulk import MAX_BULK_IN_FLIGHT

    host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
    stalled = []
    for _ in range(MAX_BULK_IN_FLIGHT):
        sock = socket.create_connection((host, port))
        sock.sendall(
            b"POST /v1/bulk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + b"Authorization: " + admin.http.headers["Authorization"].encode() + b"\r\n"
            + b"Idempotency-Key: stall\r\nContent-Length: 100\r\n\r\n{"
        )  # fmt: skip
        stalled.append(sock)
    try:
        aid = admin.account()["id"]
        deadline_ok = False
        for _ in range(50):  # the stalled requests reach their handlers
            r = _bulk(admin, [_op("topup", aid, "1")], _key())
            if r.status_code == 503:
                deadline_ok = True
                break
            threading.Event().wait(0.05)
        assert deadline_ok, r.text
        assert "Retry-After" in r.headers
    finally:
        for sock in stalled:
            sock.close()
    for _ in range(100):
        r = _bulk(admin, [_op("topup", aid, "1")], _key())
        if r.status_code == 200:
            break
        threading.Event().wait(0.05)
    assert r.status_code == 200, r.text


def test_the_admin_client_posts_bulk_typed(server: Server, admin: Admin) -> None:
    from birdbalance import AdminClient

    aid = admin.account()["id"]
    admin.topup(aid, "1")
    token = admin.http.headers["Authorization"].removeprefix("Bearer ")
    with AdminClient(server.url, token) as client:
        dry = client.bulk([{"type": "charge", "account": aid, "amount": "2"}], dry_run=True)
        assert dry.dry_run and dry.results[0].status == 422
        answer = client.bulk([{"type": "charge", "account": aid, "amount": "0.25"}])
    assert answer.results[0].status == 201 and answer.results[0].entry
    assert answer.balances[0].available == "0.75"


def test_the_admin_client_retries_the_very_same_request() -> None:
    """A 503 or a lost connection is retried with the same body and keys, so the server
    can answer it once; a 4xx is not retried."""
    from birdbalance import AdminClient
    from birdbalance.errors import ValidationError

    seen: list[httpx.Request] = []
    answer = {"dry_run": False, "results": [], "balances": []}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(seen) == 2:
            return httpx.Response(503, json={"errors": [{"code": 99, "description": "busy"}]})
        if len(seen) == 3:
            return httpx.Response(200, json=answer)
        return httpx.Response(422, json={"errors": [{"code": 10, "description": "no"}]})

    client = AdminClient(
        "http://bulk.test", "token", max_retries=3, backoff_s=0, max_backoff_s=0,
        transport=httpx.MockTransport(handler),
    )  # fmt: skip
    with client:
        assert client.bulk([{"type": "topup", "account": "acc_x", "amount": "1"}]).results == []
        with pytest.raises(ValidationError):
            client.bulk([{"type": "topup", "account": "acc_x", "amount": "1"}])
    assert len(seen) == 4
    assert len({r.content for r in seen[:3]}) == 1
    assert len({r.headers["Idempotency-Key"] for r in seen[:3]}) == 1
    assert seen[3].headers["Idempotency-Key"] != seen[0].headers["Idempotency-Key"]
    assert seen[0].headers["Authorization"] == "Bearer token"


def test_bulk_entries_are_counted_in_the_metrics(server: Server, admin: Admin) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def counts() -> dict[tuple[str, str], float]:
        text = admin.http.get("/metrics").text
        return {
            (s.labels["kind"], s.labels["outcome"]): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "birdbalance_ledger_entries_total"
        }

    aid = admin.account()["id"]
    before = counts()
    ops = [
        _op("topup", aid, "2"),
        _op("charge", aid, "1"),
        _op("charge", aid, "5"),
        _op("hold", aid, "1"),
    ]
    key = _key()
    assert _bulk(admin, ops, key).status_code == 200
    assert _bulk(admin, ops, key).status_code == 200  # a replay of the whole request
    assert _bulk(admin, ops, dry_run=True).status_code == 200  # counts nothing
    after = counts()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert {k: v for k, v in delta.items() if v} == {
        ("topup", "posted"): 1,
        ("charge", "posted"): 1,
        ("charge", "refused"): 1,
        ("topup", "replayed"): 1,
        ("charge", "replayed"): 2,
    }
