"""How the admin client builds, retries and reads a request (an httpx MockTransport
stands in for the server: what matters here is what goes over the wire)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from birdbalance import (
    AdminClient,
    ConflictError,
    NotEnoughBalanceError,
    ResponseError,
    ServerError,
)
from birdbalance.admin_session import MAX_ANSWER_BYTES

ACCOUNT = {
    "id": "acc_01M8251EV3X822KQNA7WA9CSZJ",
    "name": None,
    "payment": "prepaid",
    "type": "euros",
    "scale": 6,
    "credit_limit": None,
    "metadata": {},
    "created_at": "2026-11-28T12:00:00.000000Z",
    "balances": {
        "live": {"amount": "1", "pending": "0", "available": "1", "entries": 1},
        "test": {"amount": "0", "pending": "0", "available": "0", "entries": 0},
    },
    "parent": None,
    "balance": "own",
}


def _errors(code: int, text: str, parameter: str | None = None) -> dict[str, object]:
    return {"errors": [{"code": code, "description": text, "parameter": parameter}]}


class Script:
    """Answers in turn, recording every request."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.answers.pop(0)


def _client(script: Script, **options: float) -> AdminClient:
    return AdminClient(
        "http://birdbalance.test",
        "token",
        transport=httpx.MockTransport(script),
        backoff_s=0,
        max_backoff_s=0,
        **options,
    )


def test_a_write_is_retried_with_the_very_same_key_and_bytes() -> None:
    script = Script(
        httpx.Response(503, json=_errors(1, "busy")),
        httpx.Response(500, json=_errors(99, "fault")),
        httpx.Response(201, json=ACCOUNT),
    )
    with _client(script) as admin:
        made = admin.create_account(payment="prepaid", type="euros", credit_limit=None)
    assert made.balances.live.available == "1"
    first, *others = script.requests
    assert first.method == "POST" and first.url.path == "/v1/accounts"
    assert json.loads(first.content) == {"payment": "prepaid", "type": "euros"}
    key = first.headers["idempotency-key"]
    assert len(key) == 36 and first.headers["authorization"] == "Bearer token"
    assert [(r.headers["idempotency-key"], r.content) for r in others] == [(key, first.content)] * 2


def test_the_last_5xx_is_raised_and_the_callers_key_is_sent() -> None:
    script = Script(*[httpx.Response(503, json=_errors(1, "busy"))] * 3)
    with _client(script) as admin, pytest.raises(ServerError):
        admin.create_topup("acc_x", amount="1", idempotency_key="invoice-7")
    assert {r.headers["idempotency-key"] for r in script.requests} == {"invoice-7"}
    with _client(Script()) as admin, pytest.raises(ValueError, match="blank"):
        admin.create_topup("acc_x", amount="1", idempotency_key=" ")


def test_a_read_carries_no_key_and_its_query_leaves_out_what_was_not_given() -> None:
    page = {"data": [ACCOUNT], "next_cursor": None, "has_more": False}
    script = Script(httpx.Response(200, json=page))
    moment = datetime(2026, 11, 28, 12, tzinfo=UTC)
    with _client(script) as admin:
        admin.list_accounts(limit=5)
    (request,) = script.requests
    assert "idempotency-key" not in request.headers
    assert str(request.url.query, "ascii") == "limit=5"
    script = Script(httpx.Response(404, json=_errors(20, "no account", "account")))
    with _client(script) as admin, pytest.raises(Exception, match="no account"):
        admin.get_balance_at("acc_x", at=moment)
    assert script.requests[0].url.params["at"] == "2026-11-28T12:00:00+00:00"


def test_amounts_are_exact_and_never_floats() -> None:
    script = Script(httpx.Response(422, json=_errors(25, "not enough balance")))
    with _client(script) as admin:
        with pytest.raises(TypeError, match="never floats"):
            admin.create_charge("acc_x", amount=0.1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="never floats"):
            admin.create_alert("acc_x", below="1", recharge={"amount": 2.5})  # type: ignore[typeddict-item]
        with pytest.raises(ValueError, match="not an amount"):
            admin.create_charge("acc_x", amount=Decimal("NaN"))
        with pytest.raises(ValueError, match="aware"):
            admin.get_statement("acc_x", from_=datetime(2026, 1, 1))  # noqa: DTZ001
        assert script.requests == []  # refused before anything was sent
        with pytest.raises(NotEnoughBalanceError):
            admin.create_charge("acc_x", amount=Decimal("1E+3"))
    assert json.loads(script.requests[0].content) == {"amount": "1000"}


def test_an_id_stays_one_path_segment() -> None:
    script = Script(*[httpx.Response(404, json=_errors(20, "no account", "account"))] * 3)
    with _client(script) as admin:
        for hostile in ("../../healthz", "acc_x/keys", "acc_x?limit=1#"):
            with pytest.raises(Exception, match="no account"):
                admin.get_account(hostile)
        with pytest.raises(ValueError, match="non-empty"):
            admin.get_account("")
    paths = [r.url.raw_path for r in script.requests]
    assert paths == [
        b"/v1/accounts/%2E%2E%2F%2E%2E%2Fhealthz",
        b"/v1/accounts/acc_x%2Fkeys",
        b"/v1/accounts/acc_x%3Flimit%3D1%23",
    ]


def test_answers_that_are_not_the_contract_are_refused() -> None:
    script = Script(
        httpx.Response(200, json={**ACCOUNT, "balances": {}}),
        httpx.Response(200, json=ACCOUNT),  # 201 is the creation's status
        httpx.Response(409, json=_errors(28, "key reused", "Idempotency-Key")),
        httpx.Response(200, content=b"x" * (MAX_ANSWER_BYTES + 1)),
        # An audit record's free-form detail, nested past any stack.
        httpx.Response(200, content=_audit_page(b"[" * 200_000 + b"]" * 200_000)),
    )
    with _client(script, max_retries=0) as admin:
        with pytest.raises(ResponseError, match="not a valid Account"):
            admin.get_account("acc_x")
        with pytest.raises(ResponseError, match="HTTP 200 where 201"):
            admin.create_account(payment="prepaid", type="euros")
        with pytest.raises(ConflictError) as conflict:
            admin.create_account(payment="prepaid", type="euros")
        assert conflict.value.errors[0].parameter == "Idempotency-Key"
        with pytest.raises(ResponseError, match="longer than"):
            admin.get_account("acc_x")
        with pytest.raises(ResponseError, match="recursion"):
            admin.list_audit()


def _audit_page(detail: bytes) -> bytes:
    record = (
        b'{"seq":1,"at":null,"actor":"a","action":"x","target":null,"address":null,'
        b'"status":200,"detail":{"k":' + detail + b"}}"
    )
    return b'{"data":[' + record + b'],"next_cursor":null,"has_more":false}'
