"""``GET /balance``: MessageBird's Balance API as a raw ASGI handler.

This is the hot path, so it bypasses the framework: parse the key from the
``Authorization`` header (or the legacy ``access_key`` query parameter), one indexed
lookup by the key's digest, and a response assembled from bytes. Every failure is a JSON
errors body; the 401 body is the same bytes whatever was wrong with the key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl

from birdbalance.errors import InternalError, MethodNotAllowed, ServiceUnavailable, TooManyRequests
from birdbalance.keys import MAX_CREDENTIAL_CHARS, is_well_formed, key_from_authorization
from birdbalance.ledger import Payment
from birdbalance.money import balance_type, format_amount
from birdbalance.records import BalanceView

from .guard import Guard
from .responses import JSON_CONTENT_TYPE, UNAUTHORIZED_BODY, error_bytes

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

BALANCE_PATHS: Final = frozenset({"/balance", "/balance/"})
_ALLOWED_METHODS: Final = frozenset({"GET", "HEAD"})
_METHOD_NOT_ALLOWED_BODY: Final = error_bytes(
    MethodNotAllowed("Method not allowed: /balance supports GET")
)
_INTERNAL_ERROR_BODY: Final = error_bytes(InternalError())
_UNAVAILABLE_BODY: Final = error_bytes(ServiceUnavailable())
_MAX_QUERY_BYTES: Final = 2048
#: Key digests and rendered answers kept (each under 200 bytes).
_MAX_RENDERED: Final = 4096

logger = logging.getLogger("birdbalance.balance")


def _headers(body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", JSON_CONTENT_TYPE),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"cache-control", b"no-store"),
        *extra,
    ]


def render_balance(view: BalanceView) -> bytes:
    """The exact body MessageBird sends; ``amount`` is 0 for postpaid accounts."""
    if view.payment is Payment.POSTPAID:
        amount = "0"
    else:
        amount = format_amount(view.balance_minor, view.scale)
    kind = balance_type(view.asset)
    return b'{"payment":"%s","type":"%s","amount":%s}' % (
        view.payment.value.encode("ascii"),
        kind.encode("ascii"),
        amount.encode("ascii"),
    )


def _key_from_query(query_string: bytes) -> str | None:
    if b"access_key=" not in query_string or len(query_string) > _MAX_QUERY_BYTES:
        return None
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    for name, value in pairs:
        if name == "access_key":
            if len(value) <= MAX_CREDENTIAL_CHARS and is_well_formed(value):
                return value
            return None
    return None


class BalanceEndpoint:
    """The raw ASGI handler of ``/balance`` and ``/balance/``."""

    def __init__(
        self,
        digest: Callable[[str], bytes],
        lookup: Callable[[bytes], BalanceView | None],
        async_lookup: Callable[[bytes], Awaitable[BalanceView | None]] | None = None,
        guard: Guard | None = None,
    ) -> None:
        self._guard = guard
        self._digest = digest
        self._lookup = lookup
        self._async_lookup = async_lookup
        # Digests of recent well-formed Authorization values (the digest is deterministic,
        # so this is a memo, not a credential store), and rendered answers by the view they
        # show: most requests repeat a recent key and a recent answer.
        self._digests: dict[bytes, bytes] = {}
        self._rendered: dict[BalanceView, tuple[bytes, list[tuple[bytes, bytes]]]] = {}

    async def __call__(self, scope: Scope, send: Send) -> None:
        method = scope["method"]
        if method not in _ALLOWED_METHODS:
            await self._send(send, 405, _METHOD_NOT_ALLOWED_BODY, method, ((b"allow", b"GET"),))
            return
        digest = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                digest = self._digests.get(value)
                if digest is None:
                    key = key_from_authorization(value)
                    if key is not None:
                        if len(self._digests) >= _MAX_RENDERED:
                            self._digests.clear()
                        digest = self._digests[value] = self._digest(key)
                break
        if digest is None and scope["query_string"]:
            key = _key_from_query(scope["query_string"])
            digest = self._digest(key) if key is not None else None
        try:
            if digest is None:
                view = None
            elif self._guard is None:
                view = await self._find(digest)
            else:
                found = digest
                view = await self._guard.authenticate(scope, found, lambda: self._find(found))
                if view is not None:
                    await self._guard.admit_credential(digest)
        except TooManyRequests as exc:
            retry = ((b"retry-after", str(exc.retry_after_s).encode("ascii")),)
            await self._send(send, 429, error_bytes(exc), method, retry)
            return
        except ServiceUnavailable as exc:
            # The database is down or saturated: a retryable 503, not an internal error.
            logger.warning("balance lookup unavailable: %s", exc.description)
            await self._send(send, 503, _UNAVAILABLE_BODY, method, ((b"retry-after", b"1"),))
            return
        except Exception:
            logger.exception("balance lookup failed")
            await self._send(send, 500, _INTERNAL_ERROR_BODY, method)
            return
        if view is None:
            await self._send(send, 401, UNAUTHORIZED_BODY, method)
            return
        rendered = self._rendered.get(view)
        if rendered is None:
            if len(self._rendered) >= _MAX_RENDERED:
                self._rendered.clear()
            body = render_balance(view)
            rendered = self._rendered[view] = (body, _headers(body))
        body, headers = rendered
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _find(self, digest: bytes) -> BalanceView | None:
        if self._async_lookup is not None:
            return await self._async_lookup(digest)
        return self._lookup(digest)

    @staticmethod
    async def _send(
        send: Send,
        status: int,
        body: bytes,
        method: str,
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        await send(
            {"type": "http.response.start", "status": status, "headers": _headers(body, extra)}
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
