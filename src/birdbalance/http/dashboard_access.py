"""Who is looking at the dashboard: signing in and out, and the viewer behind a session
(mixed into :class:`birdbalance.http.dashboard.Dashboard`).

Sign in with an access key (that key's account and ledger), the admin token, or a stored
admin token (every account, or, for a token confined to one account, that account's
subtree). A session is checked again against the database on every page, so a revoked
key or token ends it at once.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from birdbalance import keys as access_keys
from birdbalance.errors import ServiceError, TooManyRequests
from birdbalance.keys import MAX_CREDENTIAL_CHARS
from birdbalance.service import Service

from .access import ENV_TOKEN_ACTOR, Actor, AdminAuth
from .bodies import read_body
from .guard import Guard
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

#: Admin sessions of a stored token carry its id after this prefix.
TOKEN_SUBJECT: Final = "tok:"  # noqa: S105 -- a prefix
#: Largest sign-in form body read.
MAX_FORM_BYTES: Final = 4096


class DashboardAccess:
    """Sessions, sign-in and sign-out, and the error pages they answer with."""

    service: Service
    signer: SessionSigner
    _read: Reader[Any]
    _auth: AdminAuth
    _audit: Callable[..., Awaitable[None]] | None
    _guard: Guard | None
    _admin_token: str | None
    _secure_cookies: bool
    _body_timeout_s: float

    def _page(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> Response:
        raise NotImplementedError

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
                token = await self._read(lambda: self.service.live_token(token_id))
                return None if token is None else Viewer(session, None, token.account_id)
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
