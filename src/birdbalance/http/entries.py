"""``POST /v1/accounts/{id}/topups|charges|refunds|adjustments`` as a raw ASGI handler.

The ledger's write path is its busiest admin route, so like ``GET /balance`` it skips the
framework's routing and middleware: the same checks as every admin route (the admin
token, body limits, MessageBird's errors shape), then the entry joins the next group
commit of the process's :class:`WriteQueue`. Any other method on these paths goes on to
the Starlette app, which answers 405 with ``Allow``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from birdbalance.errors import (
    BadRequest,
    InternalError,
    PayloadTooLarge,
    RequestTimeout,
    ServiceError,
    ServiceUnavailable,
    TooManyRequests,
)
from birdbalance.ledger import EntryKind
from birdbalance.metrics import Metrics
from birdbalance.records import AuditRecord, PostedEntry, entry_outcome
from birdbalance.representations import posted_bytes
from birdbalance.runtime.writes import WriteQueue
from birdbalance.service import Service
from birdbalance.validation import is_digits

from .access import Actor
from .responses import JSON_CONTENT_TYPE, error_bytes
from .scoping import Confinement

Scope = MutableMapping[str, Any]
AuditHook = Callable[..., Awaitable[None]]
AuditRecordHook = Callable[..., AuditRecord]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ENTRY_PATH: Final = re.compile(r"/v1/accounts/([^/]+)/(topups|charges|refunds|adjustments)")
KINDS: Final = {
    "topups": EntryKind.TOPUP,
    "charges": EntryKind.CHARGE,
    "refunds": EntryKind.REFUND,
    "adjustments": EntryKind.ADJUSTMENT,
}

#: How much of an oversized chunked body is read (and dropped) before the 413.
_MAX_DRAIN_BYTES: Final = 1024 * 1024

logger = logging.getLogger("birdbalance.http")


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


class EntryEndpoint:
    """Posts one ledger entry per request through the admin API's write queue.

    :class:`BirdbalanceApp` calls :meth:`post` for every ``POST`` on these paths; the
    admin API's router also lists the instance as the routes' ASGI endpoint, so the
    paths exist there for ``405`` answers and the OpenAPI check.
    """

    def __init__(
        self,
        authorize: Callable[..., Awaitable[Actor]],
        service: Service,
        writes: WriteQueue,
        max_body_bytes: int,
        audit: AuditHook,
        audit_record: AuditRecordHook,
        metrics: Metrics | None = None,
        body_timeout_s: float = 10.0,
        confine: Callable[[Actor, str, str], Awaitable[None]] | None = None,
    ) -> None:
        self._authorize = authorize
        #: 404 unless a confined token's subtree holds the account (see .scoping).
        self._confine = confine
        self._body_timeout_s = body_timeout_s
        self._service = service
        self._writes = writes
        self._max_body_bytes = max_body_bytes
        self._metrics = metrics
        #: Records each authenticated request in the audit log...
        self._audit = audit
        #: ... whose record an entry's transaction commits with the entry.
        self._audit_record = audit_record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The endpoint as a routed ASGI app (``path_params`` from the router)."""
        kind_path = scope["path"].rsplit("/", 1)[1]
        await self.post(scope, receive, send, scope["path_params"]["account_id"], kind_path)

    async def post(
        self, scope: Scope, receive: Receive, send: Send, account_id: str, kind_path: str
    ) -> None:
        """Answer one entry request (the kind by its path's last segment)."""
        kind = KINDS[kind_path]
        actor: Actor | None = None
        retry_after: bytes | None = None
        audited = False
        action = f"POST /v1/accounts/{{account_id}}/{kind_path}"
        detail: dict[str, Any] = {}
        if (idem := _header(scope, b"idempotency-key")) is not None:
            detail["idempotency_key"] = idem[:255]
        try:
            header = _header(scope, b"authorization") or ""
            actor = await self._authorize(header, write=False, scope=scope)
            actor.require(write=True)
            if actor.account_id is not None and self._confine is not None:
                await self._confine(actor, "account", account_id)
                Confinement.require_may_mint(actor, kind.value)
            record = self._audit_record(scope, actor, action, 0, detail)
            posted, audited = await self._post(scope, receive, account_id, kind, record)
            if isinstance(posted, Exception):
                raise posted
            (status, outcome), body = entry_outcome(posted), posted_bytes(posted)
        except ServiceError as exc:
            if exc.status_code >= 500:
                logger.error("POST %s failed: %s", scope["path"][:200], exc.description)
            (status, outcome), body = entry_outcome(exc), error_bytes(exc)
            if isinstance(exc, TooManyRequests | ServiceUnavailable):
                retry_after = str(exc.retry_after_s).encode("ascii")
        except Exception:
            # The traceback goes to the server log, never to the client.
            logger.exception("POST %s failed", scope["path"][:200])
            internal = InternalError()
            (status, outcome), body = entry_outcome(internal), error_bytes(internal)
        if self._metrics is not None:
            self._metrics.entries.inc(kind.value, outcome)
        if actor is not None and not audited:
            # Refused before its transaction (or the transaction failed): not awaited to
            # commit, its audit row follows in the next audit batch (docs/security.md).
            detail["outcome"] = outcome
            await self._audit(scope, actor, action, status, detail, wait=False)
        headers = [
            (b"content-length", str(len(body)).encode("ascii")),
            (b"content-type", JSON_CONTENT_TYPE),
        ]
        if retry_after is not None:
            headers.append((b"retry-after", retry_after))
        if status in (PayloadTooLarge.status_code, RequestTimeout.status_code):
            # The rest of the body was never read: this connection cannot carry another.
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _post(
        self, scope: Scope, receive: Receive, account_id: str, kind: EntryKind, record: AuditRecord
    ) -> tuple[PostedEntry | Exception, bool]:
        """The entry's answer (or the error it got), and whether ``record`` committed."""
        idem = declared = None
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                idem = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        if declared is not None:
            if not is_digits(declared):
                raise BadRequest("Content-Length is not a number")
            if int(declared) > self._max_body_bytes:
                raise PayloadTooLarge(f"the request body exceeds {self._max_body_bytes} bytes")
        try:
            async with asyncio.timeout(self._body_timeout_s):
                chunks = await self._read_body(receive)
        except TimeoutError:
            raise RequestTimeout(
                f"the request body did not arrive within {self._body_timeout_s:g} s"
            ) from None
        new, checked = self._service.entry_request(account_id, kind, bytes(chunks), idem)
        return await self._writes.submit_entry(new, checked, record)

    async def _read_body(self, receive: Receive) -> bytearray:
        chunks = bytearray()
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise BadRequest("the client went away")
            part = message.get("body", b"")
            seen += len(part)
            if seen <= self._max_body_bytes:
                chunks += part
            elif seen > _MAX_DRAIN_BYTES or not message.get("more_body", False):
                # Read on (and drop) a little past the limit first, so a client still
                # sending gets the 413 rather than a reset connection.
                raise PayloadTooLarge(f"the request body exceeds {self._max_body_bytes} bytes")
            if not message.get("more_body", False):
                return chunks
