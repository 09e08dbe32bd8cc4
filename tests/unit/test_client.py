"""The client against scripted transports (the real server is in tests/integration)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from birdbalance import (
    AsyncClient,
    AuthenticationError,
    Balance,
    Client,
    ResponseError,
    ServerError,
    Timeout,
    TransportError,
)

OK = b'{"payment":"prepaid","type":"euros","amount":9.2}'
UNAUTHORIZED = (
    b'{"errors":[{"code":2,"description":"Request not allowed (incorrect access_key)",'
    b'"parameter":"access_key"}]}'
)


class Script:
    """Answers requests from a list; ``Exception`` items are raised instead."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer  # type: ignore[misc]
        return httpx.Response(status, content=body)


def _client(script: Script, **kw: object) -> Client:
    return Client(
        "test_" + "a" * 25,
        "http://bb.test",
        transport=httpx.MockTransport(script),
        backoff_s=0.001,
        max_backoff_s=0.002,
        **kw,
    )  # type: ignore[arg-type]


def test_balance_is_exact_and_frozen() -> None:
    script = Script((200, OK))
    with _client(script) as client:
        balance = client.balance()
    assert balance == Balance("prepaid", "euros", Decimal("9.2"))
    with pytest.raises(AttributeError):
        balance.amount = Decimal(0)  # type: ignore[misc]
    request = script.requests[0]
    assert request.url.path == "/balance"
    assert request.headers["authorization"] == "AccessKey test_" + "a" * 25


def test_retries_5xx_and_connection_errors_then_succeeds() -> None:
    script = Script((503, b"{}"), httpx.ConnectError("refused"), (200, OK))
    with _client(script, max_retries=2) as client:
        assert client.balance().amount == Decimal("9.2")
    assert len(script.requests) == 3


def test_retries_are_bounded() -> None:
    body = b'{"errors":[{"code":99,"description":"Internal error","parameter":null}]}'
    script = Script(*[(500, body)] * 3)
    with _client(script, max_retries=2) as client, pytest.raises(ServerError) as caught:
        client.balance()
    assert caught.value.status_code == 500 and caught.value.errors[0].code == 99
    assert len(script.requests) == 3

    script = Script(*[httpx.ConnectError("refused")] * 2)
    with _client(script, max_retries=1) as client, pytest.raises(TransportError):
        client.balance()
    script = Script(httpx.ReadTimeout("slow"))
    with _client(script, max_retries=0) as client, pytest.raises(Timeout):
        client.balance()


def test_4xx_is_not_retried_and_carries_the_errors_body() -> None:
    script = Script((401, UNAUTHORIZED))
    with _client(script) as client, pytest.raises(AuthenticationError) as caught:
        client.balance()
    assert len(script.requests) == 1
    assert caught.value.errors[0].code == 2
    assert caught.value.errors[0].parameter == "access_key"


@pytest.mark.parametrize("body", [b"<html>", b'{"payment":"prepaid"}', b"[]"])
def test_bodies_that_are_not_a_balance(body: bytes) -> None:
    with _client(Script((200, body))) as client, pytest.raises(ResponseError):
        client.balance()


def test_options_are_bounded() -> None:
    with pytest.raises(ValueError):
        Client("k", max_retries=11)
    with pytest.raises(ValueError):
        Client("", "http://x")
    with pytest.raises(ValueError):
        Client("k", timeout_s=0)


def test_async_twin() -> None:
    script = Script((502, b"{}"), (200, OK))

    async def main() -> Balance:
        async with AsyncClient(
            "k" * 25,
            "http://bb.test",
            transport=httpx.MockTransport(script),
            backoff_s=0.001,
            max_backoff_s=0.002,
        ) as client:
            return await client.balance()

    assert asyncio.run(main()).amount == Decimal("9.2")
    assert len(script.requests) == 2
