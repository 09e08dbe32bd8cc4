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
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any, Final, Self

import httpx

from birdbalance._version import __version__
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

DEFAULT_BASE_URL: Final = "https://rest.messagebird.com"
MAX_RETRIES: Final = 10
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
) -> _Options:
    if not access_key or any(c.isspace() for c in access_key):
        raise ValueError("access_key must be a non-empty key without spaces")
    if not 0 <= max_retries <= MAX_RETRIES:
        raise ValueError(f"max_retries must be 0..{MAX_RETRIES}")
    if not 0 < timeout_s <= 300:
        raise ValueError("timeout_s must be in (0, 300]")
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
        "User-Agent": options.user_agent,
    }


def _decode(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content, parse_float=Decimal, parse_int=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise ResponseError(
            f"HTTP {response.status_code}: the answer is not JSON", response.status_code
        ) from None


def _error_for(status: int, body: Any) -> APIError | ResponseError:
    items = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return ResponseError(f"HTTP {status} without an errors body", status)
    details = tuple(
        ErrorDetail(
            int(e.get("code", 0)) if isinstance(e, dict) else 0,
            str(e.get("description", "")) if isinstance(e, dict) else str(e),
            e.get("parameter") if isinstance(e, dict) else None,
        )
        for e in items
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


def _balance_from(response: httpx.Response) -> Balance:
    body = _decode(response)
    if response.status_code != 200:
        raise _error_for(response.status_code, body)
    if not isinstance(body, dict):
        raise ResponseError("the balance is not a JSON object", 200)
    payment, kind, amount = body.get("payment"), body.get("type"), body.get("amount")
    if not isinstance(payment, str) or not isinstance(kind, str) or not isinstance(amount, Decimal):
        raise ResponseError("the balance lacks payment, type or a numeric amount", 200)
    return Balance(payment, kind, amount)


def _settle(
    options: _Options, attempt: int, outcome: httpx.Response | httpx.TransportError
) -> Balance | float:
    """The balance of an attempt, or the seconds to wait before the next one.

    Connection failures and 5xx answers are retried until ``max_retries`` is spent; then
    (and for every other answer) this returns the balance or raises the client error.
    """
    last = attempt >= options.max_retries
    if isinstance(outcome, httpx.TransportError):
        if last:
            raise _transport_error(outcome) from outcome
    elif last or outcome.status_code < 500:
        return _balance_from(outcome)
    return _delay_s(options, attempt)


class Client:
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
            transport=transport,
        )

    def balance(self) -> Balance:
        """``GET /balance``; raises :class:`birdbalance.ClientError` subclasses."""
        for attempt in range(self._options.max_retries + 1):
            try:
                outcome = _settle(self._options, attempt, self._http.get("/balance"))
            except _RETRYABLE_EXCEPTIONS as exc:
                outcome = _settle(self._options, attempt, exc)
            if isinstance(outcome, Balance):
                return outcome
            time.sleep(outcome)
        raise AssertionError("unreachable: the last attempt settles")

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


class AsyncClient:
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
        """``GET /balance``; raises :class:`birdbalance.ClientError` subclasses."""
        for attempt in range(self._options.max_retries + 1):
            try:
                outcome = _settle(self._options, attempt, await self._http.get("/balance"))
            except _RETRYABLE_EXCEPTIONS as exc:
                outcome = _settle(self._options, attempt, exc)
            if isinstance(outcome, Balance):
                return outcome
            await asyncio.sleep(outcome)
        raise AssertionError("unreachable: the last attempt settles")

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


def _transport_error(exc: httpx.TransportError) -> TransportError:
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"no answer within the timeout: {exc}")
    return TransportError(f"could not reach the server: {exc}")
