"""Signed webhooks: the signatures, their verification, and the retry schedule (no I/O).

A delivery is a POST of the event's stored JSON body, signed two ways:

- ``Birdbalance-Signature: t=<unix seconds>,v1=<hex>``, the hex being HMAC-SHA256 over
  ``"{t}.{body}"`` keyed with the subscription's secret text. Every delivery has it.
- The `Standard Webhooks <https://www.standardwebhooks.com>`_ headers ``webhook-id``
  (the event's id, the same on every retry), ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64>``, the HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``
  keyed with the secret's base64-decoded bytes, so the ``standardwebhooks`` libraries
  verify it. Secrets are issued in that format (``whsec_`` and 32 random bytes in
  base64); a subscription made before carries a secret of 32 URL-safe characters, which
  signs the first header only until ``birdbalance webhooks rotate-secret`` gives it a
  standard one.

Receivers check either with :func:`verify_webhook`, which also refuses timestamps outside
a tolerance, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import secrets
import time
from collections.abc import Mapping
from typing import Any, Final

from birdbalance.errors import WebhookSignatureError

SIGNATURE_HEADER: Final = "Birdbalance-Signature"
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 -- a prefix, not a secret
#: Attempts before a delivery is dead-lettered (about a day with the default backoff).
MAX_ATTEMPTS: Final = 16
MAX_HEADER_CHARS: Final = 1024


#: The random bytes of a secret issued now (Standard Webhooks: 24 to 64).
SECRET_BYTES: Final = 32
#: How long a secret issued before Standard Webhooks is after its prefix.
LEGACY_SECRET_CHARS: Final = 32
#: Most signatures one ``webhook-signature`` header may list (a rotation lists two).
MAX_SIGNATURES: Final = 8


def new_secret() -> str:
    """A subscription secret in the Standard Webhooks format: 256 random bits."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def standard_key(secret: str) -> bytes | None:
    """The key a Standard Webhooks secret stands for (``whsec_`` and 24 to 64 bytes in
    base64); None for a secret issued before them (32 characters after the prefix, read as
    text), or any other text."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    encoded = secret[len(SECRET_PREFIX) :]
    if len(encoded) == LEGACY_SECRET_CHARS or len(encoded) > 88:
        return None
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if 24 <= len(key) <= 64 else None


def standard_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (one ``v1,`` signature) for ``body``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Birdbalance-Signature`` header value for ``body``."""
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={_digest(secret, moment, body)}"


def signed_headers(
    body: bytes, secret: str, event_id: str, timestamp: int | None = None
) -> dict[str, str]:
    """The headers every webhook POST carries, from the server or from ``watch``: the
    Standard Webhooks ones too where the secret is in their format."""
    moment = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, secret, moment),
        "Birdbalance-Event-Id": event_id,
    }
    key = standard_key(secret)
    if key is not None:
        headers["webhook-id"] = event_id
        headers["webhook-timestamp"] = str(moment)
        headers["webhook-signature"] = standard_signature(key, event_id, moment, body)
    return headers


def verify_webhook(
    payload: bytes | str,
    header: str | Mapping[str, str] | None,
    secret: str,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery's signature and age; return the event.

    ``header`` is the ``Birdbalance-Signature`` value, or the request's headers (any
    mapping, names in any case): then the Standard Webhooks headers are checked when
    they are there, ``Birdbalance-Signature`` otherwise.

    Raises :class:`~birdbalance.errors.WebhookSignatureError` when the headers are
    missing or malformed, no ``v1`` signature matches (compared in constant time), or the
    timestamp is more than ``tolerance_s`` away from ``now``; that error and no other,
    whatever the headers, the payload or its JSON hold.
    """
    if isinstance(header, Mapping):
        try:
            headers = {str(k).lower(): v for k, v in header.items()}
        except Exception:  # noqa: BLE001 -- a hostile mapping is a refusal, nothing else
            raise WebhookSignatureError("the headers cannot be read") from None
        if "webhook-signature" in headers:
            body = _payload_bytes(payload)
            _verify_standard(body, headers, secret, tolerance_s, now)
            return _event(body)
        header = headers.get(SIGNATURE_HEADER.lower())
    body = _payload_bytes(payload)
    header = _header_text(header, SIGNATURE_HEADER)
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and (seconds := _unix_seconds(value)) is not None:
            timestamp = seconds
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookSignatureError("the Birdbalance-Signature header has no t= or no v1=")
    _require_fresh(timestamp, tolerance_s, now)
    try:
        expected = _digest(secret, timestamp, body)
    except UnicodeEncodeError:
        raise WebhookSignatureError("the secret is not Unicode text") from None
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise WebhookSignatureError("no signature matches the payload")
    return _event(body)


def _unix_seconds(text: str) -> int | None:
    """A signature's timestamp: at most 12 ASCII digits (None for anything else)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None


def _require_fresh(timestamp: int, tolerance_s: float, now: float | None) -> None:
    """Refuse a signature made more than ``tolerance_s`` from ``now`` (a replay)."""
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookSignatureError("the signature's timestamp is outside the tolerance")


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, str):
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError:
            raise WebhookSignatureError("the payload is not Unicode text") from None
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    raise WebhookSignatureError("the payload must be bytes or text")


def _header_text(value: Any, name: str) -> str:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1")  # as HTTP carries header bytes
    if not isinstance(value, str) or not value or len(value) > MAX_HEADER_CHARS:
        raise WebhookSignatureError(f"missing or oversized {name} header")
    return value


def _verify_standard(
    body: bytes, headers: dict[str, Any], secret: str, tolerance_s: float, now: float | None
) -> None:
    """The Standard Webhooks check of ``body`` against its three headers."""
    key = standard_key(secret) if isinstance(secret, str) else None
    if key is None:
        raise WebhookSignatureError(
            "this secret is not in the Standard Webhooks format: check Birdbalance-Signature"
        )
    message_id = _header_text(headers.get("webhook-id"), "webhook-id")
    stamp = _header_text(headers.get("webhook-timestamp"), "webhook-timestamp")
    listed = _header_text(headers.get("webhook-signature"), "webhook-signature")
    timestamp = _unix_seconds(stamp)
    if timestamp is None:
        raise WebhookSignatureError("the webhook-timestamp header is not unix seconds")
    _require_fresh(timestamp, tolerance_s, now)
    try:
        expected = standard_signature(key, message_id, timestamp, body)
    except UnicodeEncodeError:
        raise WebhookSignatureError("the webhook-id header is not Unicode text") from None
    offered = listed.split(" ")[:MAX_SIGNATURES]
    if not any(
        hmac.compare_digest(expected.encode(), o.encode("utf-8", "replace")) for o in offered
    ):
        raise WebhookSignatureError("no signature matches the payload")


def _event(body: bytes) -> dict[str, Any]:
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
