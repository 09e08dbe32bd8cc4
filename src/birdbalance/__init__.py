"""birdbalance: account balances on a real ledger, wire-compatible with MessageBird.

The public client surface is re-exported here; everything else may change. The client
itself (httpx, asyncio) is imported on first use, so that the ``birdbalance`` command's
local subcommands start without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from birdbalance._version import __version__
from birdbalance.endpoint import DEFAULT_BASE_URL
from birdbalance.errors import (
    APIError,
    AuthenticationError,
    BirdbalanceError,
    ClientError,
    ConflictError,
    ErrorDetail,
    NotEnoughBalanceError,
    NotFoundError,
    ResponseError,
    ServerError,
    Timeout,
    TransportError,
    ValidationError,
    WebhookSignatureError,
)
from birdbalance.webhooks import verify_webhook

if TYPE_CHECKING:
    from birdbalance.admin_client import AdminClient, AsyncAdminClient
    from birdbalance.client import AsyncClient, Balance, Client

_FROM_CLIENT = frozenset({"AsyncClient", "Balance", "Client"})
_FROM_ADMIN_CLIENT = frozenset({"AdminClient", "AsyncAdminClient"})


def __getattr__(name: str) -> Any:
    if name in _FROM_CLIENT:
        from birdbalance import client

        return getattr(client, name)
    if name in _FROM_ADMIN_CLIENT:
        from birdbalance import admin_client

        return getattr(admin_client, name)
    raise AttributeError(f"module 'birdbalance' has no attribute {name!r}")


__all__ = [
    "DEFAULT_BASE_URL",
    "APIError",
    "AdminClient",
    "AsyncAdminClient",
    "AsyncClient",
    "AuthenticationError",
    "Balance",
    "BirdbalanceError",
    "Client",
    "ClientError",
    "ConflictError",
    "ErrorDetail",
    "NotEnoughBalanceError",
    "NotFoundError",
    "ResponseError",
    "ServerError",
    "Timeout",
    "TransportError",
    "ValidationError",
    "WebhookSignatureError",
    "__version__",
    "verify_webhook",
]
