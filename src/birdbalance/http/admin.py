"""The admin API under ``/v1/``: thin Starlette handlers around :class:`Service`.

Authenticated by ``Authorization: Bearer <admin token>`` (see
:mod:`birdbalance.http.access`): read-only tokens may only ``GET``. Every other request
an admin makes is recorded in the audit log, with its answer's status. Writes go through
the process's write queue (writer threads and group commit of ledger entries), reads
through its reader threads, both in :class:`birdbalance.runtime.Runtime`: the event loop
stays free during fsync, lock waits and scans.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from birdbalance import shapes
from birdbalance.errors import InternalError, ServiceError
from birdbalance.ids import utc_timestamp
from birdbalance.metrics import Metrics
from birdbalance.records import AuditRecord
from birdbalance.runtime import Runtime
from birdbalance.service import Service

from .access import Actor, AdminAuth
from .addresses import client_address
from .admin_reports import ReportHandlers
from .bodies import read_body
from .bulk import MAX_BULK_BODY_BYTES, BulkSlots
from .entries import KINDS, EntryEndpoint
from .guard import Guard
from .responses import JSONBody
from .scoping import ACTOR_SCOPE, Confinement, json_fields, named

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]
READ_METHODS: Final = frozenset({"GET", "HEAD"})
#: Longest request path the audit log keeps as a target.
MAX_TARGET_CHARS: Final = 500


def _key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (every write takes one; the service checks it)."""
    return request.headers.get("idempotency-key")


class AdminAPI(ReportHandlers):
    """Request handlers of the admin API, bound to one service and writer thread."""

    def __init__(
        self,
        service: Service,
        runtime: Runtime,
        admin_token: str | None,
        max_body_bytes: int,
        metrics: Metrics | None = None,
        body_timeout_s: float = 10.0,
        trusted_proxies: tuple[Any, ...] = (),
        guard: Guard | None = None,
    ) -> None:
        self.service = service
        self.body_timeout_s = body_timeout_s
        self.trusted_proxies = trusted_proxies
        self._max_body_bytes = max_body_bytes
        self._runtime = runtime
        self._metrics = metrics
        self._bulk = BulkSlots()
        self.auth = AdminAuth(admin_token, service, runtime.read, guard)
        self.confinement = Confinement(service, runtime.read)
        #: Ledger entries: a raw ASGI endpoint (see :mod:`birdbalance.http.entries`).
        self.entries = EntryEndpoint(
            self.auth.actor,
            service,
            runtime.writes,
            max_body_bytes,
            self.audit,
            self.audit_record,
            metrics,
            body_timeout_s,
            self.confinement.require,
        )

    def audit_record(
        self,
        scope: MutableMapping[str, Any],
        actor: Actor,
        action: str,
        status: int,
        detail: dict[str, Any],
    ) -> AuditRecord:
        """The audit record of an admin action (``status``: its answer's)."""
        return AuditRecord(
            actor=actor.id,
            action=action,
            target=scope["path"][:MAX_TARGET_CHARS],
            address=client_address(scope, self.trusted_proxies),
            status=status,
            detail={**detail, "token_name": actor.name} if actor.name != actor.id else detail,
            # When it happened, even if a busy database delays its row.
            at=utc_timestamp(),
        )

    async def audit(
        self,
        scope: MutableMapping[str, Any],
        actor: Actor,
        action: str,
        status: int,
        detail: dict[str, Any],
        *,
        wait: bool,
    ) -> None:
        """Record an admin action; ``wait``: return only once it is committed."""
        record = self.audit_record(scope, actor, action, status, detail)
        if wait:
            await self._runtime.audit_trail.written(record)
        else:
            await self._runtime.audit_trail.record(record)

    # ------------------------------------------------------------------ plumbing

    async def authorize(self, request: Request, *, write: bool) -> Actor:
        """The admin making ``request`` (``Unauthorized``/``Forbidden`` otherwise)."""
        header = request.headers.get("authorization", "")
        return await self.auth.actor(header, write=write, scope=request.scope)

    async def _body(self, request: Request) -> bytes:
        """The request's body, read whole within its limits (the operation decodes it)."""
        return await read_body(request, self._max_body_bytes, self.body_timeout_s)

    async def _filtered(
        self, request: Request, kind: str, value: str | None, parameter: str
    ) -> None:
        """A confined token's listing names one resource of its subtree (422, 404)."""
        actor: Actor = request.scope[ACTOR_SCOPE]
        if actor.account_id is not None:
            self.confinement.require_filter(actor, value, parameter)
            assert value is not None
            await self.confinement.require(actor, kind, value, parameter)

    async def _write(self, fn: Callable[[], T]) -> T:
        return await self._runtime.write(fn)

    async def read(self, fn: Callable[[], T]) -> T:
        """Run a store read off the event loop, on the bounded reader threads."""
        return await self._read(fn)

    async def _read(self, fn: Callable[[], T]) -> T:
        return await self._runtime.read(fn)

    # ------------------------------------------------------------------ handlers

    async def create_account(self, request: Request) -> JSONBody:
        body = await self._body(request)
        idem = _key(request)
        actor: Actor = request.scope[ACTOR_SCOPE]
        if actor.account_id is not None:
            # A confined token makes sub-accounts inside its subtree only.
            parent = named(json_fields(body), "parent")
            if parent is None:
                self.confinement.require_unconfined(actor, "create a top-level account")
            else:
                await self.confinement.require(actor, "account", parent, "parent")
        result = await self._write(lambda: self.service.create_account(body, idem))
        return JSONBody(result, status_code=201)

    async def list_accounts(self, request: Request) -> JSONBody:
        q = request.query_params
        within = request.scope[ACTOR_SCOPE].account_id
        return JSONBody(
            await self._read(
                lambda: self.service.list_accounts(
                    cursor=q.get("cursor"),
                    limit=q.get("limit"),
                    search=q.get("search"),
                    within=within,
                )
            )
        )

    async def get_account(self, request: Request) -> JSONBody:
        account_id = request.path_params["account_id"]
        return JSONBody(await self._read(lambda: self.service.get_account(account_id)))

    async def set_spending_limit(self, request: Request) -> JSONBody:
        body = await self._body(request)
        account_id = request.path_params["account_id"]
        # The limit is the parent's policy: not for a token confined to the sub-account.
        self.confinement.require_above(
            request.scope[ACTOR_SCOPE], account_id, "change the spending limit"
        )
        return JSONBody(
            await self._write(
                lambda: self.service.set_spending_limit(account_id, body, _key(request))
            )
        )

    async def remove_spending_limit(self, request: Request) -> JSONBody:
        account_id = request.path_params["account_id"]
        self.confinement.require_above(
            request.scope[ACTOR_SCOPE], account_id, "change the spending limit"
        )
        return JSONBody(
            await self._write(
                lambda: self.service.set_spending_limit(account_id, None, _key(request))
            )
        )

    async def create_key(self, request: Request) -> JSONBody:
        body = await self._body(request)
        idem = _key(request)
        account_id = request.path_params["account_id"]
        result = await self._write(lambda: self.service.create_key(account_id, body, idem))
        return JSONBody(result, status_code=201)

    async def list_keys(self, request: Request) -> JSONBody:
        account_id = request.path_params["account_id"]
        return JSONBody(await self._read(lambda: self.service.list_keys(account_id)))

    async def revoke_key(self, request: Request) -> JSONBody:
        key_id = request.path_params["key_id"]
        return JSONBody(await self._write(lambda: self.service.revoke_key(key_id, _key(request))))

    async def rotate_key(self, request: Request) -> JSONBody:
        body = await self._body(request)
        idem = _key(request)
        key_id = request.path_params["key_id"]
        result = await self._write(lambda: self.service.rotate_key(key_id, body, idem))
        return JSONBody(result, status_code=201)

    async def list_audit(self, request: Request) -> JSONBody:
        q = request.query_params
        me: Actor = request.scope[ACTOR_SCOPE]
        # A confined token reads its own actions only: the log is every admin's.
        actor = q.get("actor") if me.account_id is None else me.id
        return JSONBody(
            await self._read(
                lambda: self.service.list_audit(
                    cursor=q.get("cursor"),
                    limit=q.get("limit"),
                    actor=actor,
                    action=q.get("action"),
                )
            )
        )

    async def create_hold(self, request: Request) -> JSONBody:
        body = await self._body(request)
        idem = _key(request)
        account_id = request.path_params["account_id"]
        result = await self._write(lambda: self.service.create_hold(account_id, body, idem))
        return JSONBody(result, status_code=201)

    async def list_holds(self, request: Request) -> JSONBody:
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
        hold_id = request.path_params["hold_id"]
        return JSONBody(await self._read(lambda: self.service.get_hold(hold_id)))

    async def capture_hold(self, request: Request) -> JSONBody:
        body = await self._body(request)
        idem = _key(request)
        hold_id = request.path_params["hold_id"]
        return JSONBody(await self._write(lambda: self.service.capture_hold(hold_id, body, idem)))

    async def void_hold(self, request: Request) -> JSONBody:
        body = await self._body(request)
        idem = _key(request)
        hold_id = request.path_params["hold_id"]
        return JSONBody(await self._write(lambda: self.service.void_hold(hold_id, body, idem)))

    async def list_subaccounts(self, request: Request) -> JSONBody:
        q = request.query_params
        account_id = request.path_params["account_id"]
        return JSONBody(
            await self._read(
                lambda: self.service.list_subaccounts(
                    account_id, cursor=q.get("cursor"), limit=q.get("limit")
                )
            )
        )

    async def create_transfer(self, request: Request) -> JSONBody:
        body = await self._body(request)
        idem = _key(request)
        actor: Actor = request.scope[ACTOR_SCOPE]
        if actor.account_id is not None:
            for side in ("from", "to"):
                fields = json_fields(body)
                if named(fields, side) is not None:
                    await self.confinement.require(
                        actor, "account", named(fields, side) or "", side
                    )
        result = await self._write(lambda: self.service.create_transfer(body, idem))
        return JSONBody(result, status_code=201)

    async def list_transfers(self, request: Request) -> JSONBody:
        q = request.query_params
        await self._filtered(request, "account", q.get("account"), "account")
        return JSONBody(
            await self._read(
                lambda: self.service.list_transfers(
                    account=q.get("account"), cursor=q.get("cursor"), limit=q.get("limit")
                )
            )
        )

    async def get_transfer(self, request: Request) -> JSONBody:
        transfer_id = request.path_params["transfer_id"]
        return JSONBody(await self._read(lambda: self.service.get_transfer(transfer_id)))

    async def post_bulk(self, request: Request) -> Response:
        """Up to 1,000 ledger operations in one transaction (see :mod:`.bulk`)."""
        idem = _key(request)
        actor: Actor = request.scope[ACTOR_SCOPE]

        async def write(body: bytes) -> Any:
            await self.confinement.require_bulk(actor, body)
            return await self._write(lambda: self.service.post_bulk(body, idem))

        posting = await self._bulk.post(
            lambda: read_body(request, MAX_BULK_BODY_BYTES, self.body_timeout_s), write
        )
        posted = await posting
        if self._metrics is not None:
            for (kind, outcome), count in posted.outcomes.items():
                self._metrics.entries.inc(kind, outcome, amount=count)
        return Response(posted.answer, media_type="application/json")

    async def create_alert(self, request: Request) -> JSONBody:
        body = await self._body(request)
        account_id = request.path_params["account_id"]
        result = await self._write(
            lambda: self.service.create_alert(account_id, body, _key(request))
        )
        return JSONBody(result, status_code=201)

    async def list_alerts(self, request: Request) -> JSONBody:
        account_id = request.path_params["account_id"]
        return JSONBody(await self._read(lambda: self.service.list_alerts(account_id)))

    async def delete_alert(self, request: Request) -> JSONBody:
        alert_id = request.path_params["alert_id"]
        return JSONBody(
            await self._write(lambda: self.service.delete_alert(alert_id, _key(request)))
        )

    async def recharge_failed(self, request: Request) -> JSONBody:
        body = await self._body(request)
        alert_id = request.path_params["alert_id"]
        return JSONBody(
            await self._write(lambda: self.service.recharge_failed(alert_id, body, _key(request)))
        )

    async def list_events(self, request: Request) -> JSONBody:
        q = request.query_params
        await self._filtered(request, "account", q.get("account"), "account")
        return JSONBody(
            await self._read(
                lambda: self.service.list_events(
                    account_id=q.get("account"), cursor=q.get("cursor"), limit=q.get("limit")
                )
            )
        )

    async def create_webhook(self, request: Request) -> JSONBody:
        body = await self._body(request)
        actor: Actor = request.scope[ACTOR_SCOPE]
        if actor.account_id is not None:
            # A confined token subscribes to its subtree's accounts, one at a time.
            account = named(json_fields(body), "account")
            self.confinement.require_filter(actor, account, "account")
            assert account is not None
            await self.confinement.require(actor, "account", account)
        return JSONBody(
            await self._write(lambda: self.service.create_webhook(body, _key(request))),
            status_code=201,
        )

    async def list_webhooks(self, request: Request) -> JSONBody:
        listing = await self._read(self.service.list_webhooks)
        actor: Actor = request.scope[ACTOR_SCOPE]
        if actor.account_id is not None:
            root = actor.account_id
            mine = [
                w
                for w in listing.data
                if w.account_id is not None and await self.confinement.contains(root, w.account_id)
            ]
            listing = shapes.Listing(data=mine)
        return JSONBody(listing)

    async def rotate_webhook_secret(self, request: Request) -> JSONBody:
        webhook_id = request.path_params["webhook_id"]
        return JSONBody(
            await self._write(lambda: self.service.rotate_webhook_secret(webhook_id, _key(request)))
        )

    async def delete_webhook(self, request: Request) -> JSONBody:
        webhook_id = request.path_params["webhook_id"]
        return JSONBody(
            await self._write(lambda: self.service.delete_webhook(webhook_id, _key(request)))
        )

    async def list_deliveries(self, request: Request) -> JSONBody:
        q = request.query_params
        await self._filtered(request, "webhook", q.get("webhook"), "webhook")
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
        delivery_id = request.path_params["delivery_id"]
        return JSONBody(
            await self._write(lambda: self.service.redeliver(delivery_id, _key(request)))
        )

    def routes(self) -> list[Route]:
        table: dict[str, dict[str, Handler]] = {
            "/v1/accounts": {"POST": self.create_account, "GET": self.list_accounts},
            "/v1/accounts/{account_id}": {"GET": self.get_account},
            "/v1/accounts/{account_id}/subaccounts": {"GET": self.list_subaccounts},
            "/v1/accounts/{account_id}/spending-limit": {
                "PUT": self.set_spending_limit,
                "DELETE": self.remove_spending_limit,
            },
            "/v1/accounts/{account_id}/keys": {"POST": self.create_key, "GET": self.list_keys},
            "/v1/keys/{key_id}": {"DELETE": self.revoke_key},
            "/v1/keys/{key_id}/rotate": {"POST": self.rotate_key},
            "/v1/audit": {"GET": self.list_audit},
            "/v1/accounts/{account_id}/entries": {"GET": self.list_entries},
            "/v1/accounts/{account_id}/balance": {"GET": self.balance_at},
            "/v1/accounts/{account_id}/statement": {"GET": self.statement},
            "/v1/accounts/{account_id}/daily": {"GET": self.daily},
            "/v1/accounts/{account_id}/forecast": {"GET": self.forecast},
            "/v1/accounts/{account_id}/usage": {"GET": self.usage},
            "/v1/accounts/{account_id}/holds": {"POST": self.create_hold, "GET": self.list_holds},
            "/v1/holds/{hold_id}": {"GET": self.get_hold},
            "/v1/holds/{hold_id}/capture": {"POST": self.capture_hold},
            "/v1/holds/{hold_id}/void": {"POST": self.void_hold},
            "/v1/transfers": {"POST": self.create_transfer, "GET": self.list_transfers},
            "/v1/transfers/{transfer_id}": {"GET": self.get_transfer},
            "/v1/bulk": {"POST": self.post_bulk},
            "/v1/accounts/{account_id}/alerts": {
                "POST": self.create_alert,
                "GET": self.list_alerts,
            },
            "/v1/alerts/{alert_id}": {"DELETE": self.delete_alert},
            "/v1/alerts/{alert_id}/recharge-failures": {"POST": self.recharge_failed},
            "/v1/events": {"GET": self.list_events},
            "/v1/webhooks": {"POST": self.create_webhook, "GET": self.list_webhooks},
            "/v1/webhooks/{webhook_id}": {"DELETE": self.delete_webhook},
            "/v1/webhooks/{webhook_id}/rotate-secret": {"POST": self.rotate_webhook_secret},
            "/v1/deliveries": {"GET": self.list_deliveries},
            "/v1/deliveries/{delivery_id}/redeliver": {"POST": self.redeliver},
        }
        entries = [
            Route(f"/v1/accounts/{{account_id}}/{kind_path}", self.entries, methods=["POST"])
            for kind_path in KINDS
        ]
        return [
            *(
                Route(path, self._by_method(path, handlers), methods=list(handlers))
                for path, handlers in table.items()
            ),
            *entries,
        ]

    def _by_method(self, path: str, handlers: dict[str, Handler]) -> Handler:
        """One endpoint per path, so a 405 lists every method the path has in ``Allow``.

        It authenticates the admin (reads: any token; anything else: a write token) and
        records every request but a read in the audit log before answering.
        """
        if "GET" in handlers:
            handlers = {**handlers, "HEAD": handlers["GET"]}

        async def endpoint(request: Request) -> Response:
            write = request.method not in READ_METHODS
            actor = await self.authorize(request, write=False)
            action = f"{request.method} {path}"
            detail: dict[str, Any] = {}
            if (idem := _key(request)) is not None:
                detail["idempotency_key"] = idem[:255]
            try:
                actor.require(write)
                await self.confinement.require_path(actor, request.path_params)
                request.scope[ACTOR_SCOPE] = actor
                response = await handlers[request.method](request)
            except ServiceError as exc:
                if write:
                    detail["error"] = exc.code
                    # A 5xx is answered at once: its record must not queue behind the
                    # very database trouble that caused it (it is written when it can).
                    await self.audit(
                        request.scope,
                        actor,
                        action,
                        exc.status_code,
                        detail,
                        wait=exc.status_code < 500,
                    )
                raise
            except Exception:
                # A fault (a bug, a driver error): answered 500 in the errors shape by the
                # app's handler, and on record like every other write's answer.
                if write:
                    detail["error"] = InternalError.code
                    await self.audit(request.scope, actor, action, 500, detail, wait=False)
                raise
            if write:
                await self.audit(
                    request.scope, actor, action, response.status_code, detail, wait=True
                )
            return response

        return endpoint
