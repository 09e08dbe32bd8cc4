"""Bulk posting from Python: :class:`AdminClient` and :class:`AsyncAdminClient`.

::

    from birdbalance import AdminClient

    with AdminClient("http://127.0.0.1:8080", admin_token) as admin:
        answer = admin.bulk(
            [{"type": "charge", "account": "acc_…", "amount": "0.0075", "reference": "m-1"}]
        )
        answer.results[0].status  # 201
        answer.balances[0].available  # "9.9925"

``bulk`` sends ``POST /v1/bulk`` with an admin token (``Authorization: Bearer``). Every
operation without an ``idempotency_key`` gets one, and the request its own
``Idempotency-Key``, before the first attempt: a retry (after a connection failure, a
5xx or a 503 for a busy server) sends the very same request, which the server answers
once. The answer is typed (:class:`birdbalance.shapes.BulkAnswer`), and errors are the
client tree of :mod:`birdbalance.errors`, as :class:`birdbalance.Client` raises them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

import httpx
import msgspec

from birdbalance import call_deadline
from birdbalance.client import (
    _acall,
    _Answer,
    _aread,
    _call,
    _decode,
    _error_for,
    _Options,
    _options,
    _read,
)
from birdbalance.errors import ResponseError
from birdbalance.shapes import BulkAnswer

#: Most bytes of a bulk answer read (1,000 results are about 1 MB).
MAX_ANSWER_BYTES: Final = 16 * 1024 * 1024


def _request(
    operations: Sequence[Mapping[str, Any]], dry_run: bool, idempotency_key: str | None
) -> tuple[bytes, dict[str, str]]:
    keyed = [
        {**op, "idempotency_key": op.get("idempotency_key") or str(uuid.uuid4())}
        for op in operations
    ]
    body = json.dumps({"operations": keyed, "dry_run": dry_run}).encode()
    headers = {"Content-Type": "application/json"}
    if not dry_run:
        headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
    return body, headers


def _bulk_answer(answer: _Answer) -> BulkAnswer:
    if answer.status_code != 200:
        raise _error_for(answer.status_code, _decode(answer))
    try:
        return msgspec.json.decode(answer.content, type=BulkAnswer)
    except msgspec.MsgspecError as exc:
        raise ResponseError(f"the answer is not a bulk answer: {exc}", 200) from None


def _headers(options: _Options) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {options.access_key}",
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": options.user_agent,
    }


class AdminClient:
    """Synchronous admin client (bulk posting). Use as a context manager, or :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._options = _options(
            admin_token, base_url, timeout_s, max_retries, backoff_s, max_backoff_s,
            key_name="admin_token", max_timeout_s=600,
        )  # fmt: skip
        self._http = httpx.Client(
            base_url=self._options.base_url,
            headers=_headers(self._options),
            timeout=timeout_s,
            # Ours cuts a peer that trickles even its status line at the call's deadline.
            transport=call_deadline.transport() if transport is None else transport,
        )

    def bulk(
        self,
        operations: Sequence[Mapping[str, Any]],
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
    ) -> BulkAnswer:
        """``POST /v1/bulk``: each operation's result, in order, and the balances it left.

        Retried (the same request, keys and all) after connection failures and 5xx
        answers; ``timeout_s`` bounds the whole call, retries included.
        """
        body, headers = _request(operations, dry_run, idempotency_key)

        def send(remaining_s: float, deadline: float) -> _Answer:
            with (
                call_deadline.until(deadline),
                self._http.stream(
                    "POST", "/v1/bulk", content=body, headers=headers, timeout=remaining_s
                ) as response,
            ):
                return _read(response, deadline, MAX_ANSWER_BYTES)

        return _call(self._options, send, _bulk_answer)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncAdminClient:
    """Asynchronous twin of :class:`AdminClient`."""

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._options = _options(
            admin_token, base_url, timeout_s, max_retries, backoff_s, max_backoff_s,
            key_name="admin_token", max_timeout_s=600,
        )  # fmt: skip
        self._http = httpx.AsyncClient(
            base_url=self._options.base_url,
            headers=_headers(self._options),
            timeout=timeout_s,
            transport=transport,
        )

    async def bulk(
        self,
        operations: Sequence[Mapping[str, Any]],
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
    ) -> BulkAnswer:
        """:meth:`AdminClient.bulk`, awaited."""
        body, headers = _request(operations, dry_run, idempotency_key)

        async def send(remaining_s: float, deadline: float) -> _Answer:
            async with self._http.stream(
                "POST", "/v1/bulk", content=body, headers=headers, timeout=remaining_s
            ) as response:
                return await _aread(response, deadline, MAX_ANSWER_BYTES)

        return await _acall(self._options, send, _bulk_answer)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
