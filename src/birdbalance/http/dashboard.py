"""The billing dashboard: server-rendered pages under ``/dashboard``.

Sign in with an access key (that key's account and ledger) or the admin token (every
account, with search). Pages are Jinja2 templates; the charts are uPlot, vendored as a
static file, so the dashboard works offline with no build step and no CDN. Every page
reads through the same :class:`~birdbalance.service.Service` calls as the JSON API, so
it shows exactly what the API answers.

Security: the session cookie is signed, HttpOnly, SameSite=Strict and scoped to
``/dashboard`` (see :mod:`.sessions`); every POST must come from this origin and carry
the page's CSRF token; pages send a strict Content-Security-Policy (no inline script)
and are never cached; no key, token or webhook URL is ever written into a page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from birdbalance.daily import CHART_DAYS
from birdbalance.errors import DateError, NotFound, ServiceError
from birdbalance.ledger import EntryKind, Mode
from birdbalance.service import Service
from birdbalance.shapes import render

from .access import AdminAuth
from .dashboard_access import DashboardAccess
from .dashboard_format import (
    account_url,
    day_after,
    day_start,
    entry_filters,
    grouped,
    page_offset,
    query_url,
    usage_query,
)
from .guard import Guard
from .responses import csv_download
from .scoping import Confinement
from .sessions import (
    SessionSigner,
    Viewer,
)

T = TypeVar("T")
Reader = Callable[[Callable[[], T]], Awaitable[T]]

#: Entries per page of the entries table.
ENTRIES_PAGE_SIZE: Final = 50
#: Accounts per page of the admin's account list, and of a parent's sub-accounts.
ACCOUNTS_PAGE_SIZE: Final = 50
#: Sub-accounts an account's page lists, the lowest first.
LOWEST_SHOWN: Final = 10
#: Newest events (alerts) shown with their deliveries.
RECENT_EVENTS: Final = 10
DEFAULT_DAYS: Final = 30

_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

logger = logging.getLogger("birdbalance.dashboard")


class Dashboard(DashboardAccess):
    """The dashboard's routes, bound to one service and session signer."""

    def __init__(
        self,
        service: Service,
        read: Reader[Any],
        signer: SessionSigner,
        admin_token: str | None,
        *,
        secure_cookies: bool,
        body_timeout_s: float = 10.0,
        audit: Callable[..., Awaitable[None]] | None = None,
        guard: Guard | None = None,
        auth: AdminAuth | None = None,
    ) -> None:
        self._auth = auth if auth is not None else AdminAuth(admin_token, service, read)
        self._audit = audit
        self._guard = guard
        self._body_timeout_s = body_timeout_s
        self.service = service
        self._read = read
        self.signer = signer
        self._admin_token = admin_token
        self._secure_cookies = secure_cookies
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("birdbalance.http", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["grouped"] = grouped
        self._confinement = Confinement(service, read)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/dashboard", self.home, methods=["GET"]),
            Route("/dashboard/sign-in", self.sign_in, methods=["GET", "POST"]),
            Route("/dashboard/sign-out", self.sign_out, methods=["POST"]),
            Route("/dashboard/accounts/{account_id}", self.account, methods=["GET"]),
            Route(
                "/dashboard/accounts/{account_id}/statement.csv", self.statement, methods=["GET"]
            ),
            Route(
                "/dashboard/accounts/{account_id}/subaccounts", self.subaccounts, methods=["GET"]
            ),
            Route("/dashboard/accounts/{account_id}/usage.csv", self.usage_csv, methods=["GET"]),
            Mount(
                "/dashboard/static",
                app=StaticFiles(packages=[("birdbalance.http", "static")]),
                name="dashboard-static",
            ),
        ]

    # ------------------------------------------------------------------ plumbing

    def _page(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> Response:
        started = request.scope.get("birdbalance.started", time.perf_counter())
        html = self.templates.get_template(template).render(**context)
        elapsed_ms = (time.perf_counter() - started) * 1000
        headers = {**_PAGE_HEADERS, "Server-Timing": f"app;dur={elapsed_ms:.1f}"}
        return Response(html, status_code, headers, media_type="text/html; charset=utf-8")

    # ------------------------------------------------------------------ pages

    async def home(self, request: Request) -> Response:
        viewer = await self._viewer(request)
        if viewer is None:
            return self._to_sign_in()
        if viewer.key is not None:
            return RedirectResponse(account_url(viewer.key.account_id, {}), status_code=303)
        q = request.query_params
        search = q.get("q") or None
        cursor = q.get("cursor") or None
        error: str | None = None
        try:
            page = await self._read(
                lambda: render(
                    self.service.list_accounts(
                        cursor=cursor,
                        limit=str(ACCOUNTS_PAGE_SIZE),
                        search=search,
                        within=viewer.root,
                    )
                )
            )
        except ServiceError as exc:
            page, error = {"data": [], "next_cursor": None}, exc.description
        more = page["next_cursor"]
        return self._page(
            request,
            "accounts.html",
            viewer=viewer,
            csrf=self.signer.csrf_token(viewer.session.nonce),
            accounts=page["data"],
            search=search or "",
            error=error,
            next_url=None
            if more is None
            else query_url("/dashboard", {"q": search, "cursor": more}),
        )

    def _ledger_of(self, viewer: Viewer, account_id: str, mode: str | None) -> str:
        """The ledger this viewer may see: an account viewer only their key's."""
        if viewer.key is None:
            return mode if mode in ("live", "test") else Mode.LIVE.value
        if account_id != viewer.key.account_id or mode not in (None, viewer.key.mode.value):
            raise NotFound("no such account")
        return viewer.key.mode.value

    async def _open_ledger(self, request: Request) -> Response | tuple[Viewer, str, str]:
        """The viewer, account id and ledger a page is for, or the answer when there is
        none (sign in first, or not this viewer's to see)."""
        viewer = await self._viewer(request)
        if viewer is None:
            return self._to_sign_in()
        account_id = request.path_params["account_id"]
        try:
            mode = self._ledger_of(viewer, account_id, request.query_params.get("mode"))
        except NotFound:
            return self._not_found(request, viewer)
        if viewer.root is not None and not await self._confinement.contains(
            viewer.root, account_id
        ):
            return self._not_found(request, viewer)  # outside a confined token's subtree
        return viewer, account_id, mode

    async def account(self, request: Request) -> Response:
        opened = await self._open_ledger(request)
        if isinstance(opened, Response):
            return opened
        viewer, account_id, mode = opened
        q = request.query_params
        days = q.get("days", str(DEFAULT_DAYS))
        days = days if days in {str(d) for d in CHART_DAYS} else str(DEFAULT_DAYS)
        filters, start, end, error = entry_filters(q)
        cursor = q.get("cursor") or None
        usage_by, usage_args, usage_form = usage_query(q, mode)

        def gather() -> dict[str, Any]:
            service = self.service
            found: dict[str, Any] = {
                "account": render(service.get_account(account_id)),
                "daily": render(service.daily(account_id, mode=mode, days=days)),
                "forecast": render(service.forecast(account_id, mode=mode)),
                "alerts": [
                    render(a) for a in service.list_alerts(account_id).data if a.mode.value == mode
                ],
            }
            found["events"] = service.recent_events(account_id, mode, RECENT_EVENTS)
            if viewer.is_admin:
                found["children"] = render(
                    service.lowest_subaccounts(account_id, offset=0, limit=LOWEST_SHOWN)
                )
            if usage_by is not None:
                try:
                    found["usage"] = render(service.usage_by(account_id, **usage_args))
                except ServiceError as exc:
                    found["usage_error"] = exc.description
            try:
                found["entries"] = render(
                    service.list_entries(
                        account_id,
                        mode=mode,
                        cursor=cursor,
                        limit=str(ENTRIES_PAGE_SIZE),
                        kind=filters["kind"],
                        start=start,
                        end=end,
                        reference=filters["reference"],
                    )
                )
            except ServiceError as exc:
                found["entries"] = {"data": [], "next_cursor": None}
                found["entries_error"] = exc.description
            return found

        try:
            found = await self._read(gather)
        except NotFound:
            return self._not_found(request, viewer)
        except ServiceError as exc:
            return self._error(request, viewer, exc.status_code, "Not allowed", exc.description)
        error = error or found.get("entries_error")
        base = {"mode": mode if viewer.is_admin else None, "days": days}
        today = datetime.now(UTC).date()
        more = found["entries"]["next_cursor"]
        account = found["account"]
        return self._page(
            request,
            "account.html",
            422 if error else 200,
            viewer=viewer,
            csrf=self.signer.csrf_token(viewer.session.nonce),
            account=account,
            ledger=account["balances"][mode],
            mode=mode,
            days=int(days),
            chart_days=CHART_DAYS,
            daily=found["daily"],
            forecast=found["forecast"],
            entries=found["entries"]["data"],
            filters={k: v or "" for k, v in filters.items()},
            kinds=[k.value for k in EntryKind],
            error=error,
            alerts=found["alerts"],
            events=found["events"],
            days_url=lambda d: account_url(account_id, {**base, **filters, "days": d}),
            mode_url=lambda m: account_url(account_id, {"mode": m, "days": days}),
            clear_url=account_url(account_id, base),
            newest_url=account_url(account_id, {**base, **filters}) if cursor else None,
            next_url=None
            if more is None
            else account_url(account_id, {**base, **filters, "cursor": more}),
            statement_url=f"/dashboard/accounts/{account_id}/statement.csv",
            children=found.get("children"),
            children_url=f"/dashboard/accounts/{account_id}/subaccounts",
            usage=found.get("usage"),
            usage_error=found.get("usage_error"),
            usage_form=usage_form,
            usage_csv_url=None
            if usage_by is None
            else query_url(f"/dashboard/accounts/{account_id}/usage.csv", usage_form),
            today=today.isoformat(),
            month_start=today.replace(day=1).isoformat(),
        )

    def _not_found(self, request: Request, viewer: Viewer | None) -> Response:
        message = "There is no such account here, or it is not yours to see."
        return self._error(request, viewer, 404, "Not found", message)

    async def statement(self, request: Request) -> Response:
        opened = await self._open_ledger(request)
        if isinstance(opened, Response):
            return opened
        viewer, account_id, mode = opened
        q = request.query_params
        try:
            start = day_start(q.get("from") or "", "from")
            last_day = q.get("to")
            end = day_after(last_day, "to") if last_day else None
            name, chunks = await self._read(
                lambda: self.service.statement_csv(account_id, start=start, end=end, mode=mode)
            )
        except NotFound:
            return self._not_found(request, viewer)
        except (DateError, ServiceError) as exc:
            message = exc.description if isinstance(exc, ServiceError) else str(exc)
            return self._error(
                request, viewer, 422, "No statement", f"That statement cannot be made: {message}"
            )
        # The server's time to the first rows; the rest streams as it is read.
        elapsed_ms = (time.perf_counter() - request.scope["birdbalance.started"]) * 1000
        return csv_download(
            name,
            chunks,
            {
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Server-Timing": f"app;dur={elapsed_ms:.1f};desc=first-rows",
            },
        )

    async def subaccounts(self, request: Request) -> Response:
        """A parent's sub-accounts, the lowest spendable first, 50 a page (admins only)."""
        opened = await self._open_ledger(request)
        if isinstance(opened, Response):
            return opened
        viewer, account_id, _ = opened
        if not viewer.is_admin:
            return self._not_found(request, viewer)
        offset = page_offset(request.query_params.get("from"))
        try:
            found = await self._read(
                lambda: (
                    render(self.service.get_account(account_id)),
                    render(
                        self.service.lowest_subaccounts(
                            account_id, offset=offset, limit=ACCOUNTS_PAGE_SIZE
                        )
                    ),
                )
            )
        except NotFound:
            return self._not_found(request, viewer)
        account, children = found
        more = children["next_cursor"]
        return self._page(
            request,
            "subaccounts.html",
            viewer=viewer,
            csrf=self.signer.csrf_token(viewer.session.nonce),
            account=account,
            children=children,
            first=offset + 1,
            next_url=None if more is None else query_url(str(request.url.path), {"from": more}),
        )

    async def usage_csv(self, request: Request) -> Response:
        """The usage breakdown of the account page's form, as CSV."""
        opened = await self._open_ledger(request)
        if isinstance(opened, Response):
            return opened
        viewer, account_id, mode = opened
        usage_by, usage_args, _ = usage_query(request.query_params, mode)
        if usage_by is None:
            return self._error(request, viewer, 422, "No breakdown", "Name a metadata key.")
        try:
            name, rows = await self._read(lambda: self.service.usage_csv(account_id, **usage_args))
        except NotFound:
            return self._not_found(request, viewer)
        except ServiceError as exc:
            return self._error(request, viewer, 422, "No breakdown", exc.description)
        return csv_download(
            name, iter(rows), {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        )
