"""Who is asking: admin credentials.

- :class:`AdminAuth` turns an ``Authorization: Bearer`` value into an :class:`Actor`: the
  configured ``BIRDBALANCE_ADMIN_TOKEN`` (read and write, compared in constant time), or
  a token made with ``birdbalance tokens create`` (stored as an HMAC digest, scoped
  ``read`` or ``write``, looked up on every request so a revocation holds at once on
  every node).

Where a request comes from is :mod:`birdbalance.http.addresses`; the record of what an
admin did is written by :class:`birdbalance.runtime.audit_trail.AuditTrail`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from birdbalance.errors import Forbidden, Unauthorized
from birdbalance.keys import is_token
from birdbalance.records import TokenScope
from birdbalance.service import Service

from .guard import Guard

T = TypeVar("T")
Reader = Callable[[Callable[[], T]], Awaitable[T]]

#: The audit log's name for the configured ``BIRDBALANCE_ADMIN_TOKEN``.
ENV_TOKEN_ACTOR: Final = "admin-token"  # noqa: S105 -- a name, not the token
#: Longest admin token looked at (longer ones cannot match).
MAX_TOKEN_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class Actor:
    """An authenticated admin: ``id`` is what the audit log records."""

    id: str
    scope: TokenScope
    name: str
    #: A token confined to this account's subtree (see :mod:`.scoping`); None: all.
    account_id: str | None = None

    def require(self, write: bool) -> None:
        """Raise ``Forbidden`` unless this actor may make the request."""
        if write and self.scope is not TokenScope.WRITE:
            raise Forbidden("This admin token is read-only", "Authorization")


class AdminAuth:
    """Authenticates admin API requests (see the module docstring)."""

    def __init__(
        self,
        admin_token: str | None,
        service: Service,
        read: Reader[Any],
        guard: Guard | None = None,
    ) -> None:
        self._env_token = admin_token.encode("utf-8") if admin_token else None
        self._service = service
        self._read = read
        self._guard = guard

    async def actor(
        self, header: str, *, write: bool, scope: MutableMapping[str, Any] | None = None
    ) -> Actor:
        """The actor behind ``header``; ``Unauthorized``, ``Forbidden`` or (from an address
        that failed too often, see :mod:`birdbalance.http.guard`) ``TooManyRequests``."""
        scheme, _, value = header.partition(" ")
        token = value.strip()[:MAX_TOKEN_CHARS] if scheme.lower() == "bearer" else ""
        digest = self._service.credential_digest(token)
        if self._guard is None or scope is None:
            actor = await self.find(token, digest)
        else:
            actor = await self._guard.authenticate(scope, digest, lambda: self.find(token, digest))
        if actor is None:
            raise Unauthorized("Request not allowed (incorrect admin token)", "Authorization")
        if self._guard is not None and scope is not None:
            await self._guard.admit_credential(digest)
        actor.require(write)
        return actor

    async def find(self, token: str, digest: bytes) -> Actor | None:
        """The admin ``token`` (with its ``digest`` under the key secret) belongs to."""
        if not token:
            return None
        supplied = token.encode("utf-8", "replace")
        if self._env_token is not None and hmac.compare_digest(supplied, self._env_token):
            return Actor(ENV_TOKEN_ACTOR, TokenScope.WRITE, ENV_TOKEN_ACTOR)
        if not is_token(token):
            return None
        found = await self._read(lambda: self._service.token_by_digest(digest))
        if found is None:
            return None
        return Actor(found.id, found.scope, found.name, found.account_id)
