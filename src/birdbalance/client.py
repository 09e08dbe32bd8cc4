"""A client for any MessageBird-compatible Balance API: birdbalance or MessageBird itself.

::

    from birdbalance import Client

    with Client("test_gshuPaZoeEG6ovbc8M79w0QyM") as client:
        balance = client.balance()
        # Balance(payment='prepaid', type='euros', amount=Decimal('103'))

:class:`AsyncClient` is the same with ``await``. Both take an httpx ``transport`` for
tests, retry connection failures and 5xx answers a bounded number of times with capped
exponential backoff and full jitter, and raise the :mod:`birdbalance.errors` client tree.
"""

from __future__ import annotations

import asyncio
import json
import platform
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import httpx

from birdbalance import call_deadline
from birdbalance._version import __version__
from birdbalance.endpoint import DEFAULT_BASE_URL
from birdbalance.errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    ErrorDetail,
    NotEnoughBalanceError,
    NotFoundError,
    ResponseError,
    ServerError,
    Timeout,
    TransportError,
    ValidationError,
)

T = TypeVar("T")

MAX_RETRIES: Final = 10
#: Most bytes of an answer read, after decompression: a balance is under 100 bytes, an
#: errors body a few hundred; a longer (or endless, or gzip-bomb) answer is refused.
MAX_BODY_BYTES: Final = 64 * 1024
#: Most digits, and the largest exponent, of a number the client accepts: more is not a
#: balance or an error code, and working with it could cost seconds.
MAX_NUMBER_DIGITS: Final = 40
#: Characters of a server's text kept (descriptions, types), and errors read.
MAX_TEXT_CHARS: Final = 200
MAX_ERRORS: Final = 20
_RETRYABLE_EXCEPTIONS: Final = (httpx.TransportError,)


@dataclass(frozen=True, slots=True)
class Balance:
    """A balance as MessageBird reports it; ``amount`` is exact (never a float)."""

    payment: str
    type: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class _Options:
    access_key: str
    base_url: str
    timeout_s: float
    max_retries: int
    backoff_s: float
    max_backoff_s: float
    user_agent: str


def _options(
    access_key: str,
    base_url: str,
    timeout_s: float,
    max_retries: int,
    backoff_s: float,
    max_backoff_s: float,
    *,
    key_name: str = "access_key",
    max_timeout_s: float = 300,
) -> _Options:
    """Checked options; ``key_name`` names the credential in errors (the admin client's is
    ``admin_token``), ``max_timeout_s`` bounds a whole call."""
    if not access_key or any(c.isspace() for c in access_key):
        raise ValueError(f"{key_name} must be non-empty and without spaces")
    if not 0 <= max_retries <= MAX_RETRIES:
        raise ValueError(f"max_retries must be 0..{MAX_RETRIES}")
    if not 0 < timeout_s <= max_timeout_s:
        raise ValueError(f"timeout_s must be in (0, {max_timeout_s:g}]")
    if not 0 <= backoff_s <= max_backoff_s <= 60:
        raise ValueError("need 0 <= backoff_s <= max_backoff_s <= 60")
    agent = f"birdbalance/{__version__} Python/{platform.python_version()}"
    return _Options(
        access_key, base_url.rstrip("/"), timeout_s, max_retries, backoff_s, max_backoff_s, agent
    )


def _delay_s(options: _Options, attempt: int) -> float:
    """Capped exponential backoff with full jitter (AWS's "full jitter")."""
    return random.uniform(0, min(options.max_backoff_s, options.backoff_s * 2**attempt))  # noqa: S311


def _headers(options: _Options) -> dict[str, str]:
    return {
        "Authorization": f"AccessKey {options.access_key}",
        "Accept": "application/json",
        # Read undecoded and capped (see MAX_BODY_BYTES): ask for no compression.
        "Accept-Encoding": "identity",
        "User-Agent": options.user_agent,
    }


class _Answer:
    """An answer's status and its body, read whole but bounded."""

    __slots__ = ("content", "status_code")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content


def _bounded(number: Decimal) -> bool:
    """A finite number of at most :data:`MAX_NUMBER_DIGITS` digits either side of the
    point (checked without expanding it: ``1E+999999999`` costs nothing)."""
    return (
        number.is_finite()
        and len(number.as_tuple().digits) <= MAX_NUMBER_DIGITS
        and abs(number.adjusted()) <= MAX_NUMBER_DIGITS
    )


def _decode(response: _Answer) -> Any:
    try:
        return json.loads(response.content, parse_float=Decimal, parse_int=Decimal)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ResponseError(
            f"HTTP {response.status_code}: the answer is not JSON", response.status_code
        ) from None


def _code(value: Any) -> int:
    """An error's ``code``: a small integer, or 0 for anything else."""
    if isinstance(value, Decimal) and _bounded(value) and value == value.to_integral_value():
        code = int(value)
        return code if abs(code) < 2**31 else 0
    return 0


def _error_for(status: int, body: Any) -> APIError | ResponseError:
    items = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return ResponseError(f"HTTP {status} without an errors body", status)
    details = tuple(
        ErrorDetail(
            _code(e.get("code")) if isinstance(e, dict) else 0,
            _text(e.get("description", "")) if isinstance(e, dict) else _text(e),
            _text(e.get("parameter")) or None if isinstance(e, dict) else None,
        )
        for e in items[:MAX_ERRORS]
    )
    cls: type[APIError] = APIError
    if status == 401:
        cls = AuthenticationError
    elif status == 404:
        cls = NotFoundError
    elif status == 409:
        cls = ConflictError
    elif status == 422:
        cls = NotEnoughBalanceError if any(d.code == 25 for d in details) else ValidationError
    elif status >= 500:
        cls = ServerError
    return cls(status, details)


def _text(value: Any) -> str:
    """Text from a server, as printable as it is safe: one line, bounded."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)[:MAX_TEXT_CHARS]
    return "".join(c if c.isprintable() else " " for c in text[:MAX_TEXT_CHARS])


def _balance_from(response: _Answer) -> Balance:
    body = _decode(response)
    if response.status_code != 200:
        raise _error_for(response.status_code, body)
    if not isinstance(body, dict):
        raise ResponseError("the balance is not a JSON object", 200)
    payment, kind, amount = body.get("payment"), body.get("type"), body.get("amount")
    if not isinstance(payment, str) or not isinstance(kind, str) or not isinstance(amount, Decimal):
        raise ResponseError("the balance lacks payment, type or a numeric amount", 200)
    if not _bounded(amount):
        raise ResponseError(f"the amount has more than {MAX_NUMBER_DIGITS} digits", 200)
    if len(payment) > MAX_TEXT_CHARS or len(kind) > MAX_TEXT_CHARS:
        raise ResponseError("the balance's payment or type is too long to be one", 200)
    return Balance(_text(payment), _text(kind), amount)


@dataclass(frozen=True, slots=True)
class _Retry:
    """An attempt that is retried after ``delay_s``."""

    delay_s: float


def _settle(
    options: _Options,
    attempt: int,
    outcome: _Answer | httpx.TransportError,
    read: Callable[[_Answer], T],
) -> T | _Retry:
    """What an attempt gave (``read`` from its answer), or the pause before the next one.

    Connection failures and 5xx answers are retried until ``max_retries`` is spent; then
    (and for every other answer) this returns what ``read`` makes of the answer or raises
    the client error.
    """
    last = attempt >= options.max_retries
    if isinstance(outcome, httpx.TransportError):
        if last:
            raise _transport_error(outcome) from outcome
    elif last or outcome.status_code < 500:
        return read(outcome)
    return _Retry(_delay_s(options, attempt))


def _call(
    options: _Options, send: Callable[[float, float], _Answer], read: Callable[[_Answer], T]
) -> T:
    """Attempts of ``send(remaining_s, deadline)``, retried as :func:`_settle` says, all
    within ``timeout_s``, pauses included."""
    deadline = time.monotonic() + options.timeout_s
    for attempt in range(options.max_retries + 1):
        remaining_s = _remaining_s(options, deadline)
        try:
            outcome = _settle(options, attempt, send(remaining_s, deadline), read)
        except _RETRYABLE_EXCEPTIONS as exc:
            outcome = _settle(options, attempt, exc, read)
        if not isinstance(outcome, _Retry):
            return outcome
        time.sleep(min(outcome.delay_s, max(0.0, deadline - time.monotonic())))
    raise AssertionError("unreachable: the last attempt settles")


async def _acall(
    options: _Options,
    send: Callable[[float, float], Awaitable[_Answer]],
    read: Callable[[_Answer], T],
) -> T:
    """:func:`_call`, awaited; ``timeout_s`` bounds it as a whole."""
    deadline = time.monotonic() + options.timeout_s
    try:
        async with asyncio.timeout(options.timeout_s):
            for attempt in range(options.max_retries + 1):
                remaining_s = _remaining_s(options, deadline)
                try:
                    outcome = _settle(options, attempt, await send(remaining_s, deadline), read)
                except _RETRYABLE_EXCEPTIONS as exc:
                    outcome = _settle(options, attempt, exc, read)
                if not isinstance(outcome, _Retry):
                    return outcome
                await asyncio.sleep(outcome.delay_s)
    except TimeoutError:
        raise Timeout(_too_slow(options)) from None
    raise AssertionError("unreachable: the last attempt settles")


class Closing:
    """Closes its connection pool on leaving a ``with`` block, or on :meth:`close`."""

    _http: httpx.Client

    def close(self) -> None:
        """Close the connection pool."""
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


class AsyncClosing:
    """Closes its connection pool on leaving an ``async with`` block, or on
    :meth:`aclose`."""

    _http: httpx.AsyncClient

    async def aclose(self) -> None:
        """Close the connection pool."""
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


class Client(Closing):
    """Synchronous client. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        access_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 2,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._options = _options(
            access_key, base_url, timeout_s, max_retries, backoff_s, max_backoff_s
        )
        self._http = httpx.Client(
            base_url=self._options.base_url,
            headers=_headers(self._options),
            timeout=timeout_s,
            # Ours cuts a peer that trickles even its status line at the call's deadline.
            transport=call_deadline.transport() if transport is None else transport,
        )

    def balance(self) -> Balance:
        """``GET /balance``; raises :class:`birdbalance.ClientError` subclasses.

        ``timeout_s`` bounds the whole call, retries and their pauses included (a server
        that trickles its answer is cut off at the next byte past it).
        """
        return _call(self._options, self._get, _balance_from)

    def _get(self, remaining_s: float, deadline: float) -> _Answer:
        with (
            call_deadline.until(deadline),
            self._http.stream("GET", "/balance", timeout=remaining_s) as response,
        ):
            return _read(response, deadline)


class AsyncClient(AsyncClosing):
    """Asynchronous twin of :class:`Client`."""

    def __init__(
        self,
        access_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 2,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._options = _options(
            access_key, base_url, timeout_s, max_retries, backoff_s, max_backoff_s
        )
        self._http = httpx.AsyncClient(
            base_url=self._options.base_url,
            headers=_headers(self._options),
            timeout=timeout_s,
            transport=transport,
        )

    async def balance(self) -> Balance:
        """``GET /balance``; raises :class:`birdbalance.ClientError` subclasses.

        ``timeout_s`` bounds the whole call, retries and their pauses included.
        """
        return await _acall(self._options, self._get, _balance_from)

    async def _get(self, remaining_s: float, deadline: float) -> _Answer:
        async with self._http.stream("GET", "/balance", timeout=remaining_s) as response:
            return await _aread(response, deadline)


def _too_slow(options: _Options) -> str:
    return f"no complete answer within {options.timeout_s:g} s (retries included)"


def _remaining_s(options: _Options, deadline: float) -> float:
    remaining_s = deadline - time.monotonic()
    if remaining_s <= 0:
        raise Timeout(_too_slow(options))
    return remaining_s


def _check_encoding(response: httpx.Response) -> None:
    """Refuse a compressed answer before reading any of it (identity was asked for: a
    compressed one could be a bomb, which decoding a single chunk would set off)."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ResponseError(f"the answer is compressed ({encoding[:20]})", response.status_code)


def _take(
    body: bytearray,
    chunk: bytes,
    response: httpx.Response,
    deadline: float,
    max_bytes: int = MAX_BODY_BYTES,
) -> None:
    """Add a chunk of an answer, within the call's bounds."""
    body += chunk
    if len(body) > max_bytes:
        raise ResponseError(f"the answer is longer than {max_bytes} bytes", response.status_code)
    if time.monotonic() > deadline:
        raise Timeout("the answer did not finish arriving within the timeout")


def _read(response: httpx.Response, deadline: float, max_bytes: int = MAX_BODY_BYTES) -> _Answer:
    """A streamed answer, read whole within the call's bounds (uncompressed, at most
    ``max_bytes``, by ``deadline``)."""
    _check_encoding(response)
    body = bytearray()
    for chunk in response.iter_bytes():
        _take(body, chunk, response, deadline, max_bytes)
    return _Answer(response.status_code, bytes(body))


async def _aread(
    response: httpx.Response, deadline: float, max_bytes: int = MAX_BODY_BYTES
) -> _Answer:
    """:func:`_read`, for an async client's streamed answer."""
    _check_encoding(response)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        _take(body, chunk, response, deadline, max_bytes)
    return _Answer(response.status_code, bytes(body))


def _transport_error(exc: httpx.TransportError) -> TransportError:
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"no answer within the timeout: {exc}")
    return TransportError(f"could not reach the server: {exc}")
