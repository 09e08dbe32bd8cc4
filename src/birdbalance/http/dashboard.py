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

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from birdbalance import keys as access_keys
from birdbalance.daily import CHART_DAYS
from birdbalance.errors import DateError, NotFound, ServiceError, TooManyRequests
from birdbalance.keys import MAX_CREDENTIAL_CHARS
from birdbalance.ledger import EntryKind, Mode
from birdbalance.service import Service
from birdbalance.shapes import render

from .access import ENV_TOKEN_ACTOR, Actor, AdminAuth
from .bodies import read_body
from .dashboard_format import (
    account_url,
    day_after,
    day_start,
    entry_filters,
    grouped,
    query_url,
)
from .guard import Guard
from .responses import csv_download
from .sessions import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SessionSigner,
    Viewer,
    key_subject,
    new_nonce,
)

T = TypeVar("T")
Reader = Callable[[Callable[[], T]], Awaitable[T]]

#: Entries per page of the entries table.
ENTRIES_PAGE_SIZE: Final = 50
#: Admin sessions of a stored token carry its id after this prefix.
TOKEN_SUBJECT: Final = "tok:"  # noqa: S105 -- a prefix
#: Accounts per page of the admin's account list.
ACCOUNTS_PAGE_SIZE: Final = 50
#: Newest events (alerts) shown with their deliveries.
RECENT_EVENTS: Final = 10
#: Largest sign-in form body read.
MAX_FORM_BYTES: Final = 4096
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


class Dashboard:
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

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/dashboard", self.home, methods=["GET"]),
            Route("/dashboard/sign-in", self.sign_in, methods=["GET", "POST"]),
            Route("/dashboard/sign-out", self.sign_out, methods=["POST"]),
            Route("/dashboard/accounts/{account_id}", self.account, methods=["GET"]),
            Route(
                "/dashboard/accounts/{account_id}/statement.csv", self.statement, methods=["GET"]
            ),
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

    def _cookie(self, response: Response, name: str, value: str, max_age_s: int) -> None:
        """Set (or, with ``max_age_s`` 0, delete) one of the dashboard's cookies."""
        response.set_cookie(
            name,
            value,
            max_age=max_age_s,
            path="/dashboard",
            secure=self._secure_cookies,
            httponly=True,
            samesite="strict",
        )

    async def _viewer(self, request: Request) -> Viewer | None:
        """The signed-in viewer, checked again against the database and the admin token."""
        request.scope["birdbalance.started"] = time.perf_counter()
        session = self.signer.read(request.cookies.get(SESSION_COOKIE), int(time.time()))
        if session is None:
            return None
        if session.role == "admin":
            if session.subject.startswith(TOKEN_SUBJECT):
                token_id = session.subject.removeprefix(TOKEN_SUBJECT)
                live = await self._read(lambda: self.service.token_is_live(token_id))
                return Viewer(session, None) if live else None
            token = self._admin_token
            if token is None or not hmac.compare_digest(
                session.subject, self.signer.admin_subject(token)
            ):
                return None
            return Viewer(session, None)
        try:
            digest = bytes.fromhex(session.subject)
        except ValueError:
            return None
        key = await self._read(lambda: self.service.key_by_digest(digest))
        return None if key is None else Viewer(session, key)

    @staticmethod
    def _same_origin(request: Request) -> bool:
        """Whether a POST comes from a page of this site, by what the browser says.

        ``Sec-Fetch-Site`` (which no script can set) decides when present. Otherwise the
        ``Origin``'s host and port must be the ``Host`` the request was sent to; the
        scheme is left out, so a TLS-terminating proxy in front changes nothing. Requests
        with neither (old browsers, scripts) still need the form's CSRF token.
        """
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None:
            return fetch_site in ("same-origin", "none")
        origin = request.headers.get("origin")
        if origin is None:
            return True
        netloc = urlsplit(origin).netloc.lower()
        host = request.headers.get("host", "").lower()
        return bool(netloc) and hmac.compare_digest(netloc.encode(), host.encode())

    def _error(
        self, request: Request, viewer: Viewer | None, status_code: int, title: str, message: str
    ) -> Response:
        """An error page (its sign-out form, if signed in, carries the session's token)."""
        csrf = None if viewer is None else self.signer.csrf_token(viewer.session.nonce)
        return self._page(
            request,
            "error.html",
            status_code,
            title=title,
            message=message,
            viewer=viewer,
            csrf=csrf,
        )

    def _refused(self, request: Request, message: str, status_code: int) -> Response:
        return self._error(request, None, status_code, "Not allowed", message)

    async def _form(self, request: Request) -> dict[str, str] | None:
        """The posted form (UTF-8, at most MAX_FORM_BYTES), or None if it cannot be read."""
        try:
            body = await read_body(request, MAX_FORM_BYTES, self._body_timeout_s)
            return dict(parse_qsl(body.decode("utf-8")))
        except (ServiceError, UnicodeDecodeError, ValueError):
            return None

    @staticmethod
    def _to_sign_in() -> Response:
        return RedirectResponse("/dashboard/sign-in", status_code=303)

    # ------------------------------------------------------------------ sign-in

    async def sign_in(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._sign_in_post(request)
        viewer = await self._viewer(request)
        if viewer is not None:
            return RedirectResponse("/dashboard", status_code=303)
        return self._sign_in_form(request, None, 200)

    def _sign_in_form(self, request: Request, error: str | None, status_code: int) -> Response:
        nonce = new_nonce()
        response = self._page(
            request,
            "sign_in.html",
            status_code,
            csrf=self.signer.csrf_token(nonce),
            error=error,
            admin_enabled=self._admin_token is not None,
            viewer=None,
        )
        self._cookie(response, SIGN_IN_COOKIE, nonce, 3600)
        return response

    async def _sign_in_post(self, request: Request) -> Response:
        request.scope["birdbalance.started"] = time.perf_counter()
        if not self._same_origin(request):
            return self._refused(request, "Sign-in must come from this site's own form.", 403)
        form = await self._form(request)
        if form is None:
            return self._sign_in_form(request, "That form could not be read.", 400)
        nonce = request.cookies.get(SIGN_IN_COOKIE, "")
        if not self.signer.csrf_ok(nonce, form.get("csrf")):
            return self._sign_in_form(
                request, "The sign-in form had expired. Please try again.", 403
            )
        credential = form.get("credential", "").strip()[:MAX_CREDENTIAL_CHARS]
        digest = self.service.credential_digest(credential)
        now_s = int(time.time())

        async def check() -> tuple[str, Actor | None] | None:
            """The new session's cookie and, for an admin, who signed in."""
            actor = await self._auth.find(credential, digest)
            if actor is not None:
                subject = (
                    self.signer.admin_subject(credential)
                    if actor.id == ENV_TOKEN_ACTOR
                    else TOKEN_SUBJECT + actor.id
                )
                return self.signer.issue("admin", subject, now_s)[1], actor
            if access_keys.is_well_formed(credential):
                key = await self._read(lambda: self.service.key_by_digest(digest))
                if key is not None:
                    return self.signer.issue("account", key_subject(digest), now_s)[1], None
            return None

        try:
            if self._guard is None:
                signed = await check()
            else:
                signed = await self._guard.authenticate(request.scope, digest, check)
        except TooManyRequests as exc:
            page = self._sign_in_form(
                request, "Too many failed sign-ins from your address. Try again later.", 429
            )
            page.headers["Retry-After"] = str(exc.retry_after_s)
            return page
        if signed is None:
            # One answer for every failure: it tells nothing about which keys exist.
            return self._sign_in_form(request, "That access key or admin token is not valid.", 401)
        session_cookie, actor = signed
        if actor is not None and self._audit is not None:
            action = "POST /dashboard/sign-in"
            await self._audit(request.scope, actor, action, 303, {}, wait=True)
        response = RedirectResponse("/dashboard", status_code=303)
        self._cookie(response, SESSION_COOKIE, session_cookie, self.signer.lifetime_s)
        self._cookie(response, SIGN_IN_COOKIE, "", 0)
        return response

    async def sign_out(self, request: Request) -> Response:
        viewer = await self._viewer(request)
        if viewer is not None:
            if not self._same_origin(request):
                return self._refused(request, "Sign-out must come from this site's own form.", 403)
            form = await self._form(request)
            if form is None or not self.signer.csrf_ok(viewer.session.nonce, form.get("csrf")):
                return self._refused(request, "The page had expired: reload it and try again.", 403)
        response = self._to_sign_in()
        self._cookie(response, SESSION_COOKIE, "", 0)
        return response

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
                        cursor=cursor, limit=str(ACCOUNTS_PAGE_SIZE), search=search
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
