"""Tokens confined to one account's subtree (``tokens create --account``).

Such a token sees and manages that account and its sub-accounts only. Anything else
(a sibling, a parent, another tree, a key, hold, alert, webhook, delivery or transfer of
theirs) answers exactly what an id that does not exist answers: 404 with the same error,
never 403, so an outsider's ids are not even confirmed. Every path parameter of the admin
API names a resource and is checked here before its handler runs; what a body or a query
names (a parent, a transfer's accounts, a filter) is checked by the handler that reads it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

from birdbalance.errors import Forbidden, InvalidParameter, NotFound
from birdbalance.service import Service
from birdbalance.validation import resource_id

from .access import Actor

T = TypeVar("T")
Reader = Callable[[Callable[[], T]], Awaitable[T]]

#: How "not found" reads for each kind of resource, as the unscoped API words it.
_NOT_FOUND: Final = {
    "account": "no account {}",
    "key": "no key {}",
    "hold": "no hold {}",
    "alert": "no alert rule {}",
    "webhook": "no webhook {}",
    "delivery": "no delivery {}",
    "transfer": "no transfer {}",
}

#: The entry kinds that add money out of nothing (refused to a confined token).
MINTING_KINDS: Final = frozenset({"topup", "refund", "adjustment"})

#: The request's ``birdbalance.*`` scope entry the endpoint leaves its actor under.
ACTOR_SCOPE: Final = "birdbalance.actor"


def json_fields(body: bytes) -> dict[str, Any] | None:
    """A body's JSON object, to find what it names; None if it is not one (the operation
    then refuses it as it would anyway)."""
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def named(fields: dict[str, Any] | None, name: str) -> str | None:
    """The id a body's field names (None: absent, or not text: refused later anyway)."""
    value = None if fields is None else fields.get(name)
    return value if isinstance(value, str) else None


def not_found(kind: str, value: str, parameter: str | None = None) -> NotFound:
    return NotFound(_NOT_FOUND[kind].format(value), parameter or kind)


class Confinement:
    """Checks that what a confined actor names lies inside its subtree."""

    def __init__(self, service: Service, read: Reader[Any]) -> None:
        self._service = service
        self._read = read

    async def contains(self, root: str, account_id: str) -> bool:
        """Whether ``account_id`` is ``root`` or below it."""
        chain = await self._read(lambda: self._service.store.ancestry(account_id))
        return chain is not None and root in chain

    async def require(
        self, actor: Actor, kind: str, value: str, parameter: str | None = None
    ) -> None:
        """404 (as for an id that does not exist) unless the ``kind`` resource ``value``
        belongs to the actor's subtree; nothing for an unconfined actor."""
        root = actor.account_id
        if root is None:
            return
        value = resource_id(value, parameter or kind)  # a malformed id: the usual 404
        owners = (
            [value]
            if kind == "account"
            else await self._read(lambda: self._service.store.owners_of(kind, value))
        )
        for owner in owners:
            if await self.contains(root, owner):
                return
        raise not_found(kind, value, parameter)

    async def require_path(self, actor: Actor, path_params: Mapping[str, Any]) -> None:
        """Every ``<kind>_id`` path parameter inside the actor's subtree."""
        for name, value in path_params.items():
            kind = name.removesuffix("_id")
            assert kind in _NOT_FOUND, name
            await self.require(actor, kind, str(value))

    async def require_bulk(self, actor: Actor, body: bytes) -> None:
        """Every account and hold a bulk request's operations name, inside the subtree."""
        if actor.account_id is None:
            return
        operations = (json_fields(body) or {}).get("operations")
        for op in operations if isinstance(operations, list) else []:
            fields = op if isinstance(op, dict) else None
            for kind in ("account", "hold"):
                value = named(fields, kind)
                if value is not None:
                    await self.require(actor, kind, value, "operations")
            if fields is not None and isinstance(fields.get("type"), str):
                self.require_may_mint(actor, fields["type"])

    @staticmethod
    def require_filter(actor: Actor, value: str | None, parameter: str) -> None:
        """A confined actor lists what one account (or webhook) it names has: 422
        without one (the named one is then checked like any other)."""
        if actor.account_id is not None and value is None:
            raise InvalidParameter(
                f"a token confined to {actor.account_id} lists these one {parameter} at a"
                f" time: give {parameter}",
                parameter,
            )

    @staticmethod
    def require_may_mint(actor: Actor, kind: str) -> None:
        """403 for a confined actor's top-up, refund or adjustment: money enters a
        subtree only from outside it (an unconfined admin, or a transfer in); inside it a
        confined token moves money (transfers) and spends it (charges, holds)."""
        if actor.account_id is not None and kind in MINTING_KINDS:
            raise Forbidden(
                f"a token confined to {actor.account_id} cannot post {kind}s: money enters"
                " its subtree by a transfer in, or an unconfined admin token's write",
                "Authorization",
            )

    @staticmethod
    def require_above(actor: Actor, account_id: str, what: str) -> None:
        """403 for a confined actor acting on its own root where only the level above
        may (a shared sub-account's spending limit is its parent's policy)."""
        if actor.account_id is not None and actor.account_id == account_id:
            raise Forbidden(
                f"a token confined to {account_id} cannot {what} of its own account",
                "Authorization",
            )

    @staticmethod
    def require_unconfined(actor: Actor, what: str) -> None:
        """403 for what only an unconfined admin may do."""
        if actor.account_id is not None:
            raise Forbidden(
                f"a token confined to {actor.account_id} cannot {what}", "Authorization"
            )
