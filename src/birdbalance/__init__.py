"""birdbalance: account balances on a real ledger, wire-compatible with MessageBird.

The public client surface is re-exported here; everything else may change.
"""

from __future__ import annotations

from birdbalance._version import __version__
from birdbalance.client import DEFAULT_BASE_URL, AsyncClient, Balance, Client
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

__all__ = [
    "DEFAULT_BASE_URL",
    "APIError",
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
