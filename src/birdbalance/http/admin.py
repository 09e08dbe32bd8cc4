"""The admin API under ``/v1/``: thin Starlette handlers around :class:`Service`.

Authenticated by ``Authorization: Bearer <admin token>``, compared in constant time.
Writes go through the process's :class:`WriteQueue` (writer threads and group commit of
ledger entries), so the event loop stays free during fsync and lock waits. Reads are
indexed and bounded; on SQLite they run inline, on a networked database on reader threads.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from birdbalance.errors import (
    Unauthorized,
)
from birdbalance.metrics import Metrics
from birdbalance.service import Service
from birdbalance.validation import parse_json_body

from .bodies import read_body
from .entries import KINDS, EntryEndpoint
from .responses import JSONBody, csv_download
from .writes import WriteQueue

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]


class AdminAPI:
    """Request handlers of the admin API, bound to one service and writer thread."""

    def __init__(
        self,
        service: Service,
        admin_token: str | None,
        max_body_bytes: int,
        metrics: Metrics | None = None,
        body_timeout_s: float = 10.0,
    ) -> None:
        self.service = service
        self.body_timeout_s = body_timeout_s
        self._token = admin_token.encode("utf-8") if admin_token else None
        self._max_body_bytes = max_body_bytes
        writers = service.store.max_concurrent_writes
        assert 1 <= writers <= 100
        self.writes = WriteQueue(service.store, writers)
        #: Ledger entries: a raw ASGI endpoint (see :mod:`birdbalance.http.entries`).
        self.entries = EntryEndpoint(
            self.authorize, service, self.writes, max_body_bytes, metrics, body_timeout_s
        )
        self._reader = (
            None
            if service.store.engine == "sqlite"
            else ThreadPoolExecutor(max_workers=writers, thread_name_prefix="birdbalance-reader")
        )

    def close(self) -> None:
        self.writes.close()
        if self._reader is not None:
            self._reader.shutdown(wait=True)

    async def background_write(self, fn: Callable[[], Any]) -> Any:
        """Run a write of the server's own (expiring holds) on a writer thread."""
        return await self.writes.call(fn)

    # ------------------------------------------------------------------ plumbing

    def _authorize(self, request: Request) -> None:
        self.authorize(request.headers.get("authorization", ""))

    def authorize(self, header: str) -> None:
        """Check an ``Authorization: Bearer <admin token>`` value in constant time."""
        if self._token is None:
            raise Unauthorized(
                "The admin API is disabled: set BIRDBALANCE_ADMIN_TOKEN", "Authorization"
            )
        scheme, _, token = header.partition(" ")
        supplied = token.strip().encode("utf-8", "replace")
        if scheme.lower() != "bearer" or not hmac.compare_digest(supplied, self._token):
            raise Unauthorized("Request not allowed (incorrect admin token)", "Authorization")

    async def _body(self, request: Request) -> dict[str, Any]:
        body = await read_body(request, self._max_body_bytes, self.body_timeout_s)
        return parse_json_body(body)

    async def _write(self, fn: Callable[[], T]) -> T:
        return await self.writes.call(fn)

    async def read(self, fn: Callable[[], T]) -> T:
        """Run a store read off the event loop, on the bounded reader threads."""
        return await self._read(fn)

    async def _read(self, fn: Callable[[], T]) -> T:
        if self._reader is None:
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn)

    # ------------------------------------------------------------------ handlers

    async def create_account(self, request: Request) -> JSONBody:
        self._authorize(request)
        body = await self._body(request)
        idem = request.headers.get("idempotency-key")
        result = await self._write(lambda: self.service.create_account(body, idem))
        return JSONBody(result, status_code=201)

    async def list_accounts(self, request: Request) -> JSONBody:
        self._authorize(request)
        q = request.query_params
        return JSONBody(
            await self._read(
                lambda: self.service.list_accounts(
                    cursor=q.get("cursor"), limit=q.get("limit"), search=q.get("search")
                )
            )
        )

    async def get_account(self, request: Request) -> JSONBody:
        self._authorize(request)
        account_id = request.path_params["account_id"]
        return JSONBody(await self._read(lambda: self.service.get_account(account_id)))

    async def create_key(self, request: Request) -> JSONBody:
        self._authorize(request)
        body = await self._body(request)
        idem = request.headers.get("idempotency-key")
        account_id = request.path_params["account_id"]
        result = await self._write(lambda: self.service.create_key(account_id, body, idem))
        return JSONBody(result, status_code=201)

    async def list_keys(self, request: Request) -> JSONBody:
        self._authorize(request)
        account_id = request.path_params["account_id"]
        return JSONBody(await self._read(lambda: self.service.list_keys(account_id)))

    async def revoke_key(self, request: Request) -> JSONBody:
        self._authorize(request)
        key_id = request.path_params["key_id"]
        return JSONBody(await self._write(lambda: self.service.revoke_key(key_id)))

    async def list_entries(self, request: Request) -> JSONBody:
        self._authorize(request)
        q = request.query_params
        account_id = request.path_params["account_id"]
        return JSONBody(
            await self._read(
                lambda: self.service.list_entries(
                    account_id,
                    mode=q.get("mode"),
                    cursor=q.get("cursor"),
                    limit=q.get("limit"),
                    kind=q.get("kind"),
                    start=q.get("from"),
                    end=q.get("to"),
                    reference=q.get("reference"),
                )
            )
        )

    async def daily(self, request: Request) -> JSONBody:
        self._authorize(request)
        q = request.query_params
        account_id = request.path_params["account_id"]
        return JSONBody(
            await self._read(
                lambda: self.service.daily(account_id, mode=q.get("mode"), days=q.get("days"))
            )
        )

    async def statement(self, request: Request) -> Response:
        self._authorize(request)
        q = request.query_params
        account_id = request.path_params["account_id"]
        accept = request.headers.get("accept", "")
        if q.get("format") == "csv" or "text/csv" in accept:
            name, chunks = await self._read(
                lambda: self.service.statement_csv(
                    account_id, start=q.get("from"), end=q.get("to"), mode=q.get("mode")
                )
            )
            # The rows are read page by page while they are sent.
            return csv_download(name, chunks)
        return JSONBody(
            await self._read(
                lambda: self.service.statement(
                    account_id,
                    start=q.get("from"),
                    end=q.get("to"),
                    mode=q.get("mode"),
                    cursor=q.get("cursor"),
                    limit=q.get("limit"),
                )
            )
        )

    async def balance_at(self, request: Request) -> JSONBody:
        self._authorize(request)
        q = request.query_params
        account_id = request.path_params["account_id"]
        return JSONBody(
            await self._read(
                lambda: self.service.balance_at(account_id, at=q.get("at"), mode=q.get("mode"))
            )
        )

    async def create_hold(self, request: Request) -> JSONBody:
        self._authorize(request)
        body = await self._body(request)
        idem = request.headers.get("idempotency-key")
        account_id = request.path_params["account_id"]
        result = await self._write(lambda: self.service.create_hold(account_id, body, idem))
        return JSONBody(result, status_code=201)

    async def list_holds(self, request: Request) -> JSONBody:
        self._authorize(request)
        q = request.query_params
        account_id = request.path_params["account_id"]
        return JSONBody(
            await self._read(
                lambda: self.service.list_holds(
                    account_id,
                    mode=q.get("mode"),
                    status=q.get("status"),
                    cursor=q.get("cursor"),
                    limit=q.get("limit"),
                )
            )
        )

    async def get_hold(self, request: Request) -> JSONBody:
        self._authorize(request)
        hold_id = request.path_params["hold_id"]
        return JSONBody(await self._read(lambda: self.service.get_hold(hold_id)))

    async def capture_hold(self, request: Request) -> JSONBody:
        self._authorize(request)
        body = await self._body(request)
        idem = request.headers.get("idempotency-key")
        hold_id = request.path_params["hold_id"]
        return JSONBody(await self._write(lambda: self.service.capture_hold(hold_id, body, idem)))

    async def void_hold(self, request: Request) -> JSONBody:
        self._authorize(request)
        body = await self._body(request)
        idem = request.headers.get("idempotency-key")
        hold_id = request.path_params["hold_id"]
        return JSONBody(await self._write(lambda: self.service.void_hold(hold_id, body, idem)))

    async def create_alert(self, request: Request) -> JSONBody:
        self._authorize(request)
        body = await self._body(request)
        account_id = request.path_params["account_id"]
        result = await self._write(lambda: self.service.create_alert(account_id, body))
        return JSONBody(result, status_code=201)

    async def list_alerts(self, request: Request) -> JSONBody:
        self._authorize(request)
        account_id = request.path_params["account_id"]
        return JSONBody(await self._read(lambda: self.service.list_alerts(account_id)))

    async def delete_alert(self, request: Request) -> JSONBody:
        self._authorize(request)
        alert_id = request.path_params["alert_id"]
        return JSONBody(await self._write(lambda: self.service.delete_alert(alert_id)))

    async def recharge_failed(self, request: Request) -> JSONBody:
        self._authorize(request)
        body = await self._body(request)
        alert_id = request.path_params["alert_id"]
        return JSONBody(await self._write(lambda: self.service.recharge_failed(alert_id, body)))

    async def list_events(self, request: Request) -> JSONBody:
        self._authorize(request)
        q = request.query_params
        return JSONBody(
            await self._read(
                lambda: self.service.list_events(
                    account_id=q.get("account"), cursor=q.get("cursor"), limit=q.get("limit")
                )
            )
        )

    async def create_webhook(self, request: Request) -> JSONBody:
        self._authorize(request)
        body = await self._body(request)
        return JSONBody(
            await self._write(lambda: self.service.create_webhook(body)), status_code=201
        )

    async def list_webhooks(self, request: Request) -> JSONBody:
        self._authorize(request)
        return JSONBody(await self._read(self.service.list_webhooks))

    async def delete_webhook(self, request: Request) -> JSONBody:
        self._authorize(request)
        webhook_id = request.path_params["webhook_id"]
        return JSONBody(await self._write(lambda: self.service.delete_webhook(webhook_id)))

    async def list_deliveries(self, request: Request) -> JSONBody:
        self._authorize(request)
        q = request.query_params
        return JSONBody(
            await self._read(
                lambda: self.service.list_deliveries(
                    status=q.get("status"),
                    webhook_id=q.get("webhook"),
                    cursor=q.get("cursor"),
                    limit=q.get("limit"),
                )
            )
        )

    async def redeliver(self, request: Request) -> JSONBody:
        self._authorize(request)
        delivery_id = request.path_params["delivery_id"]
        return JSONBody(await self._write(lambda: self.service.redeliver(delivery_id)))

    def routes(self) -> list[Route]:
        table: dict[str, dict[str, Handler]] = {
            "/v1/accounts": {"POST": self.create_account, "GET": self.list_accounts},
            "/v1/accounts/{account_id}": {"GET": self.get_account},
            "/v1/accounts/{account_id}/keys": {"POST": self.create_key, "GET": self.list_keys},
            "/v1/keys/{key_id}": {"DELETE": self.revoke_key},
            "/v1/accounts/{account_id}/entries": {"GET": self.list_entries},
            "/v1/accounts/{account_id}/balance": {"GET": self.balance_at},
            "/v1/accounts/{account_id}/statement": {"GET": self.statement},
            "/v1/accounts/{account_id}/daily": {"GET": self.daily},
            "/v1/accounts/{account_id}/holds": {"POST": self.create_hold, "GET": self.list_holds},
            "/v1/holds/{hold_id}": {"GET": self.get_hold},
            "/v1/holds/{hold_id}/capture": {"POST": self.capture_hold},
            "/v1/holds/{hold_id}/void": {"POST": self.void_hold},
            "/v1/accounts/{account_id}/alerts": {
                "POST": self.create_alert,
                "GET": self.list_alerts,
            },
            "/v1/alerts/{alert_id}": {"DELETE": self.delete_alert},
            "/v1/alerts/{alert_id}/recharge-failures": {"POST": self.recharge_failed},
            "/v1/events": {"GET": self.list_events},
            "/v1/webhooks": {"POST": self.create_webhook, "GET": self.list_webhooks},
            "/v1/webhooks/{webhook_id}": {"DELETE": self.delete_webhook},
            "/v1/deliveries": {"GET": self.list_deliveries},
            "/v1/deliveries/{delivery_id}/redeliver": {"POST": self.redeliver},
        }
        entries = [
            Route(f"/v1/accounts/{{account_id}}/{kind_path}", self.entries, methods=["POST"])
            for kind_path in KINDS
        ]
        return [
            *(
                Route(path, _by_method(handlers), methods=list(handlers))
                for path, handlers in table.items()
            ),
            *entries,
        ]


def _by_method(handlers: dict[str, Handler]) -> Handler:
    """One endpoint per path, so a 405 lists every method the path has in ``Allow``."""
    if "GET" in handlers:
        handlers = {**handlers, "HEAD": handlers["GET"]}

    async def endpoint(request: Request) -> Response:
        return await handlers[request.method](request)

    return endpoint
