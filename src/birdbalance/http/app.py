"""The application factory: ``create_app(settings)`` builds one ASGI app, nothing global.

Requests for ``/balance`` go straight to the raw :class:`BalanceEndpoint`, and ledger
entries (``POST /v1/accounts/{id}/charges`` and its siblings) to the raw
:class:`EntryEndpoint`; everything else (the admin API, ``/openapi.json``, ``/healthz``,
unknown routes) goes to a Starlette app whose exception handlers answer in MessageBird's
errors shape. The ``_method`` query parameter overrides the HTTP method for every route,
as MessageBird documents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from birdbalance.errors import (
    BadRequest,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    SchemaOutOfDate,
    ServiceError,
    ServiceUnavailable,
    TooManyRequests,
)
from birdbalance.metrics import Metrics
from birdbalance.runtime import Runtime
from birdbalance.runtime.gauges import (
    METRICS_CONTENT_TYPE,
    database_gauge,
    scrape_gauges,
    write_queue_gauge,
)
from birdbalance.service import Service
from birdbalance.settings import Settings
from birdbalance.shared_counters import SharedCounters
from birdbalance.storage import Store, open_store

from .admin import AdminAPI
from .balance import BALANCE_PATHS, BalanceEndpoint
from .dashboard import Dashboard
from .entries import ENTRY_PATH, KINDS, EntryEndpoint
from .guard import Guard
from .openapi import openapi_document
from .responses import JSON_CONTENT_TYPE, JSONBody, error_bytes, error_response
from .sessions import SessionSigner

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_OVERRIDABLE_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
_UNMATCHED: Final = "unmatched"
_ENTRY_ROUTES: Final = {kind: f"/v1/accounts/{{account_id}}/{kind}" for kind in KINDS}

logger = logging.getLogger("birdbalance.http")


def _method_override(scope: Scope) -> Scope:
    """Apply ``?_method=DELETE`` (MessageBird's alternative for limited clients)."""
    try:
        pairs = parse_qsl(scope["query_string"].decode("latin-1"))
    except ValueError:
        return scope
    for name, value in pairs:
        if name == "_method" and value.upper() in _OVERRIDABLE_METHODS:
            return {**scope, "method": value.upper()}
    return scope


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if exc.status_code >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.description)
    if exc.status_code in (PayloadTooLarge.status_code, RequestTimeout.status_code):
        # The rest of the body was never read: this connection cannot carry another.
        return error_response(exc, {"Connection": "close"})
    if isinstance(exc, TooManyRequests | ServiceUnavailable):
        return error_response(exc, {"Retry-After": str(exc.retry_after_s)})
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound(f"No route {request.url.path[:200]}"))
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return error_response(
            MethodNotAllowed(f"Method {request.method} not allowed here"), {"Allow": allow}
        )
    return error_response(BadRequest(str(exc.detail)[:200]))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the server log, never to the client.
    return error_response(InternalError())


#: Never rate limited: load balancers and orchestrators must always reach them.
_PROBES: Final = frozenset({"/healthz", "/readyz"})


async def _too_many(send: Send, exc: TooManyRequests) -> None:
    body = error_bytes(exc)
    headers = [
        (b"content-type", JSON_CONTENT_TYPE),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"retry-after", str(exc.retry_after_s).encode("ascii")),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BirdbalanceApp:
    """The ASGI app. Build it with :func:`create_app`."""

    def __init__(
        self,
        balance: BalanceEndpoint,
        entries: EntryEndpoint,
        rest: Starlette,
        metrics: Metrics | None = None,
        guard: Guard | None = None,
    ) -> None:
        self._guard = guard
        self._balance = balance
        self._entries = entries
        self._rest = rest
        self.metrics = metrics if metrics is not None else Metrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._rest(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_counted(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        route = _UNMATCHED
        try:
            if b"_method=" in scope["query_string"]:
                scope = _method_override(scope)
            path = scope["path"]
            if self._guard is not None and self._guard.per_address and path not in _PROBES:
                try:
                    await self._guard.admit_address(self._guard.address(scope))
                except TooManyRequests as exc:
                    await _too_many(send_counted, exc)
                    return
            if path in BALANCE_PATHS:
                route = "/balance"
                await self._balance(scope, send_counted)
                return
            if scope["method"] == "POST" and path.startswith("/v1/accounts/"):
                match = ENTRY_PATH.fullmatch(path)
                if match is not None:
                    route = _ENTRY_ROUTES[match[2]]
                    await self._entries.post(scope, receive, send_counted, match[1], match[2])
                    return
            await self._rest(scope, receive, send_counted)
            # Starlette's router leaves the matched route in the scope: its template, never
            # the raw path, so ids do not become label values.
            matched = scope.get("route")
            route = getattr(matched, "path", _UNMATCHED)
        finally:
            method = scope["method"] if scope["method"] in _OVERRIDABLE_METHODS else "other"
            self.metrics.requests.inc(route, method, str(status or 500))
            self.metrics.latency.observe(time.perf_counter() - started, route)


def create_app(settings: Settings, store: Store | None = None) -> BirdbalanceApp:
    """Build the ASGI app for ``settings`` (and ``store``, opened from settings if None).

    Startup (ASGI lifespan) refuses an out-of-date schema; shutdown closes the store.
    """
    store = store if store is not None else open_store(settings)
    service = Service(store, mail_configured=settings.smtp is not None)
    guard = Guard(settings)
    shared = SharedCounters(Path(settings.metrics_dir)) if settings.metrics_dir else None
    metrics = Metrics(shared)
    runtime = Runtime(store, settings, metrics)
    admin = AdminAPI(
        service,
        runtime,
        settings.admin_token,
        settings.max_body_bytes,
        metrics,
        body_timeout_s=settings.request_timeout_s,
        trusted_proxies=guard.trusted,
        guard=guard,
    )
    # Without a configured secret, sessions last as long as this app (see server.run,
    # which gives every worker of one run the same one).
    secret = settings.session_secret or secrets.token_urlsafe(32)
    dashboard = Dashboard(
        service,
        runtime.read,
        SessionSigner(secret.encode("utf-8"), settings.session_lifetime_s),
        settings.admin_token,
        secure_cookies=settings.secure_cookies,
        body_timeout_s=settings.request_timeout_s,
        audit=admin.audit,
        guard=guard,
        auth=admin.auth,
    )
    document = openapi_document()
    lookups = store.balance_lookups()

    async def healthz(request: Request) -> JSONBody:
        """The process is up and serving; says nothing about the database."""
        return JSONBody({"status": "ok"})

    async def readyz(request: Request) -> Response:
        """Ready for traffic: the database answers and its schema is this version's."""
        try:
            current, latest = await asyncio.wait_for(
                run_in_threadpool(store.schema_version), timeout=settings.database_timeout_s + 1
            )
        except Exception as exc:  # noqa: BLE001 -- any failure at all means "not ready"
            logger.warning("readiness check failed: %s", type(exc).__name__)
            return error_response(ServiceUnavailable("the database is unreachable"))
        if current != latest:
            return error_response(
                ServiceUnavailable(
                    f"the database schema is at version {current}, this birdbalance needs"
                    f" {latest}: run `birdbalance migrate`"
                )
            )
        return JSONBody({"status": "ready", "database": store.engine, "schema_version": current})

    async def openapi(request: Request) -> JSONBody:
        return JSONBody(document)

    async def metrics_text(request: Request) -> Response:
        """Prometheus metrics of this process (the admin token, as for ``/v1/``)."""
        actor = await admin.authorize(request, write=False)
        # Every ledger's gauges: not for a token confined to one subtree.
        admin.confinement.require_unconfined(actor, "read the process metrics")
        try:
            gauges = await asyncio.wait_for(
                run_in_threadpool(scrape_gauges, store, settings.metrics_ledger_gauges),
                timeout=settings.database_timeout_s + 1,
            )
        except Exception as exc:  # noqa: BLE001 -- the process metrics still answer
            logger.warning("metrics: the database gauges failed: %s", type(exc).__name__)
            gauges = [database_gauge(ok=False)]
        gauges.append(write_queue_gauge(runtime.writes.depth))
        return Response(metrics.render(gauges), media_type=METRICS_CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        current, latest = store.schema_version()
        if current != latest:
            raise SchemaOutOfDate(
                f"database schema is at version {current}, this birdbalance needs {latest}:"
                " run `birdbalance migrate`"
            )
        store.check_key_secret()
        store.cache_balances(settings.balance_cache_size)
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            if lookups is not None:
                await lookups.close()
            await guard.close()
            store.close()
            if shared is not None:
                shared.close()

    rest = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"]),
            *admin.routes(),
            *dashboard.routes(),
        ],
        exception_handlers={
            ServiceError: _service_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
    )
    return BirdbalanceApp(
        BalanceEndpoint(
            store.hasher.digest,
            store.lookup_balance,
            lookups.lookup if lookups else None,
            guard,
        ),
        admin.entries,
        rest,
        metrics,
        guard,
    )
