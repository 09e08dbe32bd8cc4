"""What every admin call shares: the session, one request built, sent, retried and typed.

:class:`AdminSession` (and :class:`AsyncAdminSession`) hold the options and the
connection pool; the operations (:mod:`birdbalance.admin_api`, generated from the
OpenAPI document) each call :meth:`AdminSession._send` with their method, path, answer
type and success status.

A write gets its ``Idempotency-Key`` before the first attempt (the caller's, or a fresh
UUID), so a retry after a connection failure, a 5xx or a 503 for a busy server sends the
very same request, which the server applies once and replays after. Bodies are plain JSON
values; an amount is a ``str``, an ``int`` or a :class:`~decimal.Decimal`, never a
``float`` (refused with ``TypeError`` before anything is sent). Answers are read whole but
bounded (:data:`MAX_ANSWER_BYTES`, within the call's ``timeout_s``) and decoded strictly
into the types of :mod:`birdbalance.shapes`, the same types the server renders and the
OpenAPI document is generated from.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from birdbalance import call_deadline
from birdbalance.client import (
    AsyncClosing,
    Closing,
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

T = TypeVar("T")

#: An amount as the client takes it: exact text, a whole number or a ``Decimal``.
AmountInput = str | int | Decimal

#: Most bytes of an answer read (a page of 500 entries, a bulk answer of 1,000 results
#: and a statement page are each under 2 MB).
MAX_ANSWER_BYTES: Final = 16 * 1024 * 1024
#: Nesting a request body may have (the deepest the API takes is 3).
MAX_BODY_DEPTH: Final = 8


def segment(value: str, name: str) -> str:
    """``value`` as one path segment: every byte that could end it or climb out of it
    (``/``, ``?``, ``#``, ``%``, and the dots of ``..``) percent-encoded."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return quote(value, safe="").replace(".", "%2E")


def plain(value: Any, depth: int = 0) -> Any:
    """A body value as JSON: a ``Decimal`` as its exact digits, a ``datetime`` (aware)
    in ISO 8601; a ``float`` anywhere is refused (money is never a float here)."""
    if depth > MAX_BODY_DEPTH:
        raise ValueError(f"a request body nests at most {MAX_BODY_DEPTH} levels")
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        raise TypeError("amounts are never floats: give a str, an int or a Decimal")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not an amount")
        return format(value, "f")
    if isinstance(value, datetime):
        return _moment(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [plain(v, depth + 1) for v in value]
    raise TypeError(f"cannot send a {type(value).__name__} in a request")


def _moment(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("a datetime must be aware (a naive one has no definite moment)")
    return value.isoformat()


def _query_value(value: Any) -> str:
    if isinstance(value, datetime):
        return _moment(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"cannot send a {type(value).__name__} as a query parameter")
    return str(value)


@dataclass(frozen=True, slots=True)
class _Request:
    """One request, built once before the first attempt (every retry sends it as is)."""

    method: str
    path: str
    params: dict[str, str]
    content: bytes | None
    headers: dict[str, str]


def request(
    method: str,
    path: str,
    *,
    query: Mapping[str, Any] | None = None,
    body: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    keyed: bool = True,
) -> _Request:
    """The request: parameters and body fields left ``None`` are left out; a write
    (``keyed``) carries ``idempotency_key`` or a fresh UUID."""
    params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
    headers: dict[str, str] = {}
    content = None
    if body is not None:
        fields = {k: plain(v) for k, v in body.items() if v is not None}
        content = json.dumps(fields, separators=(",", ":")).encode()
        headers["Content-Type"] = "application/json"
    if method not in ("GET", "HEAD") and keyed:
        if idempotency_key is not None and not idempotency_key.strip():
            raise ValueError("idempotency_key must not be blank")
        headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
    return _Request(method, path, params, content, headers)


def typed(answer: _Answer, into: type[T], status: int) -> T:
    """The answer as ``into`` when it has the operation's success ``status``; otherwise
    the client error it stands for (:mod:`birdbalance.errors`)."""
    if answer.status_code != status:
        if 200 <= answer.status_code < 300:
            raise ResponseError(
                f"HTTP {answer.status_code} where {status} was expected", answer.status_code
            )
        raise _error_for(answer.status_code, _decode(answer))
    try:
        return msgspec.json.decode(answer.content, type=into)
    except (msgspec.MsgspecError, RecursionError) as exc:  # a free-form field nested deep
        raise ResponseError(
            f"the answer is not a valid {getattr(into, '__name__', into)}: {exc}"
            " (a server newer than this client?)",
            status,
        ) from None


def _admin_options(
    admin_token: str,
    base_url: str,
    timeout_s: float,
    max_retries: int,
    backoff_s: float,
    max_backoff_s: float,
) -> _Options:
    """The checked options of an admin session (a call may take up to 600 s: bulk)."""
    return _options(
        admin_token, base_url, timeout_s, max_retries, backoff_s, max_backoff_s,
        key_name="admin_token", max_timeout_s=600,
    )  # fmt: skip


def _headers(options: _Options) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {options.access_key}",
        "Accept": "application/json",
        # Read undecoded and capped (MAX_ANSWER_BYTES): ask for no compression.
        "Accept-Encoding": "identity",
        "User-Agent": options.user_agent,
    }


class AdminSession(Closing):
    """A synchronous admin session: ``base_url``, an admin token, bounds and retries.

    ``timeout_s`` bounds a whole call, retries and their pauses included; connection
    failures and 5xx answers are retried ``max_retries`` times with capped exponential
    backoff and full jitter. ``transport`` replaces httpx's (tests, proxies).
    """

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
        self._options = _admin_options(
            admin_token, base_url, timeout_s, max_retries, backoff_s, max_backoff_s
        )
        self._http = httpx.Client(
            base_url=self._options.base_url,
            headers=_headers(self._options),
            timeout=timeout_s,
            # Ours cuts a peer that trickles even its status line at the call's deadline.
            transport=call_deadline.transport() if transport is None else transport,
        )

    def _send(self, into: type[T], status: int, built: _Request) -> T:
        def attempt(remaining_s: float, deadline: float) -> _Answer:
            with (
                call_deadline.until(deadline),
                self._http.stream(
                    built.method,
                    built.path,
                    params=built.params,
                    content=built.content,
                    headers=built.headers,
                    timeout=remaining_s,
                ) as response,
            ):
                return _read(response, deadline, MAX_ANSWER_BYTES)

        return _call(self._options, attempt, lambda answer: typed(answer, into, status))


class AsyncAdminSession(AsyncClosing):
    """The asynchronous twin of :class:`AdminSession` (``async with``, or :meth:`aclose`)."""

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
        self._options = _admin_options(
            admin_token, base_url, timeout_s, max_retries, backoff_s, max_backoff_s
        )
        self._http = httpx.AsyncClient(
            base_url=self._options.base_url,
            headers=_headers(self._options),
            timeout=timeout_s,
            transport=transport,
        )

    async def _send(self, into: type[T], status: int, built: _Request) -> T:
        async def attempt(remaining_s: float, deadline: float) -> _Answer:
            async with self._http.stream(
                built.method,
                built.path,
                params=built.params,
                content=built.content,
                headers=built.headers,
                timeout=remaining_s,
            ) as response:
                return await _aread(response, deadline, MAX_ANSWER_BYTES)

        return await _acall(self._options, attempt, lambda answer: typed(answer, into, status))
