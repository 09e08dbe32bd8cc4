"""Dashboard sessions: signed cookies and CSRF tokens, free of I/O.

A session cookie is ``<payload>.<signature>``: the payload is base64url JSON naming who
signed in (``role``), a ``subject`` the server checks again on every request, a random
``nonce`` and an expiry; the signature is HMAC-SHA256 under a key derived from the
server's session secret. The cookie never holds a secret: an account's subject is its
key's SHA-256 digest (what the database stores, useless as an access key), the admin's
an HMAC of the admin token. Revoking the key, or changing the admin token, ends every
session it opened.

CSRF tokens are HMACs of the session's nonce (or, before sign-in, of the sign-in
cookie's nonce), so a page's forms carry a value another site can neither read nor make.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Final, Literal

from birdbalance.records import ApiKey

Role = Literal["admin", "account"]

SESSION_COOKIE: Final = "bb_session"
#: Before sign-in: the nonce the sign-in form's CSRF token is made from.
SIGN_IN_COOKIE: Final = "bb_sign_in"
#: Longest cookie value worth verifying.
MAX_COOKIE_CHARS: Final = 1024
MIN_SECRET_BYTES: Final = 32
_NONCE_BYTES: Final = 16


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: who (``role``, ``subject``) and until when (unix seconds)."""

    role: Role
    subject: str
    nonce: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: the admin, or one key's account and ledger."""

    session: Session
    key: ApiKey | None
    #: An admin confined to this account's subtree (a scoped token's session).
    root: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.key is None


class SessionSigner:
    """Issues and checks session cookies and CSRF tokens under one secret."""

    def __init__(self, secret: bytes, lifetime_s: int) -> None:
        assert len(secret) >= MIN_SECRET_BYTES, "a session secret needs 32 bytes or more"
        assert 60 <= lifetime_s <= 30 * 24 * 3600
        # Separate keys per use, so no value signed for one use passes for another.
        self._session_key = hmac.digest(secret, b"birdbalance session v1", "sha256")
        self._csrf_key = hmac.digest(secret, b"birdbalance csrf v1", "sha256")
        self._admin_key = hmac.digest(secret, b"birdbalance admin subject v1", "sha256")
        self.lifetime_s = lifetime_s

    def admin_subject(self, admin_token: str) -> str:
        """The subject of admin sessions for this token (an HMAC, never the token)."""
        return hmac.digest(self._admin_key, admin_token.encode("utf-8"), "sha256").hex()

    def issue(self, role: Role, subject: str, now_s: int) -> tuple[Session, str]:
        """A new session (fresh nonce) and its cookie value."""
        session = Session(role, subject, secrets.token_hex(_NONCE_BYTES), now_s + self.lifetime_s)
        payload = json.dumps(
            {"r": role, "s": subject, "n": session.nonce, "e": session.expires_at},
            separators=(",", ":"),
        ).encode("utf-8")
        body = _b64(payload)
        return session, f"{body}.{self._sign(body)}"

    def read(self, cookie: str | None, now_s: int) -> Session | None:
        """The session in ``cookie`` if its signature holds and it has not expired."""
        if (
            not cookie
            or len(cookie) > MAX_COOKIE_CHARS
            or not cookie.isascii()
            or cookie.count(".") != 1
        ):
            return None
        body, signature = cookie.split(".")
        if not hmac.compare_digest(signature.encode("ascii", "replace"), self._sign(body).encode()):
            return None
        try:
            fields = json.loads(_unb64(body))
            session = Session(fields["r"], fields["s"], fields["n"], fields["e"])
        except (ValueError, KeyError, TypeError):
            return None  # signed by us, so unreachable unless the format changes
        if session.role not in ("admin", "account") or not isinstance(session.expires_at, int):
            return None
        return session if now_s < session.expires_at else None

    def csrf_token(self, nonce: str) -> str:
        """The CSRF token the forms of ``nonce``'s session (or sign-in page) carry."""
        return _b64(hmac.digest(self._csrf_key, nonce.encode("utf-8"), "sha256"))

    def csrf_ok(self, nonce: str, token: str | None) -> bool:
        """Whether ``token`` is ``nonce``'s CSRF token (constant time)."""
        if not token or len(token) > 64:
            return False
        return hmac.compare_digest(
            token.encode("ascii", "replace"), self.csrf_token(nonce).encode()
        )

    def _sign(self, body: str) -> str:
        return _b64(hmac.digest(self._session_key, body.encode("ascii"), "sha256"))


def new_nonce() -> str:
    """A fresh random nonce (for the sign-in cookie)."""
    return secrets.token_hex(_NONCE_BYTES)


def key_subject(key_digest: bytes) -> str:
    """The subject of an account session: the key's stored digest, as hex."""
    assert len(key_digest) == hashlib.sha256().digest_size
    return key_digest.hex()
