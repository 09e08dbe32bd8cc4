"""Signed webhooks: the signature, its verification, and the retry schedule (no I/O).

A delivery is a POST of the event's stored JSON body with the header
``Birdbalance-Signature: t=<unix seconds>,v1=<hex>``, where the hex is
HMAC-SHA256 over ``"{t}.{body}"`` keyed with the subscription's secret. Receivers check
it with :func:`verify_webhook`, which also refuses timestamps outside a tolerance, so a
captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import time
from typing import Any, Final

from birdbalance.errors import WebhookSignatureError

SIGNATURE_HEADER: Final = "Birdbalance-Signature"
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 -- a prefix, not a secret
#: Attempts before a delivery is dead-lettered (about a day with the default backoff).
MAX_ATTEMPTS: Final = 16
MAX_HEADER_CHARS: Final = 1024


def new_secret() -> str:
    """A subscription secret: 192 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(24)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Birdbalance-Signature`` header value for ``body``."""
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={_digest(secret, moment, body)}"


def signed_headers(body: bytes, secret: str, event_id: str) -> dict[str, str]:
    """The headers every webhook POST carries, from the server or from ``watch``."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, secret),
        "Birdbalance-Event-Id": event_id,
    }


def verify_webhook(
    payload: bytes | str,
    header: str | None,
    secret: str,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery's signature and age; return the event.

    Raises :class:`~birdbalance.errors.WebhookSignatureError` when the header is missing
    or malformed, no ``v1`` signature matches (compared in constant time), or the
    timestamp is more than ``tolerance_s`` away from ``now``; that error and no other,
    whatever the header, the payload or its JSON hold.
    """
    if isinstance(header, bytes | bytearray):
        header = bytes(header).decode("latin-1")  # as HTTP carries header bytes
    if isinstance(payload, str):
        try:
            body = payload.encode("utf-8")
        except UnicodeEncodeError:
            raise WebhookSignatureError("the payload is not Unicode text") from None
    elif isinstance(payload, bytes | bytearray | memoryview):
        body = bytes(payload)
    else:
        raise WebhookSignatureError("the payload must be bytes or text")
    if not isinstance(header, str) or not header or len(header) > MAX_HEADER_CHARS:
        raise WebhookSignatureError("missing or oversized Birdbalance-Signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookSignatureError("the Birdbalance-Signature header has no t= or no v1=")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookSignatureError("the signature's timestamp is outside the tolerance")
    try:
        expected = _digest(secret, timestamp, body)
    except UnicodeEncodeError:
        raise WebhookSignatureError("the secret is not Unicode text") from None
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise WebhookSignatureError("no signature matches the payload")
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        raise WebhookSignatureError("the payload is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookSignatureError("the payload is not a JSON object")
    return event


def retry_delay_s(attempts: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff before attempt ``attempts + 1``."""
    assert attempts >= 1 and 0 < base_s <= cap_s
    ceiling = min(cap_s, base_s * 2 ** min(attempts - 1, 30))
    return rng.uniform(base_s / 2, ceiling)
