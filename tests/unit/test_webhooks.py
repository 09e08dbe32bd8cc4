"""Webhook signatures: what verify_webhook accepts and refuses."""

from __future__ import annotations

import contextlib
import json
import random
import secrets

import pytest
from hypothesis import given, strategies as st

from birdbalance import WebhookSignatureError, verify_webhook
from birdbalance.webhooks import (
    SECRET_PREFIX,
    new_secret,
    retry_delay_s,
    sign,
    signed_headers,
    standard_key,
)

BODY = b'{"id":"evt_01","type":"balance.low","data":{}}'


def test_a_fresh_signature_verifies() -> None:
    secret = new_secret()
    header = sign(BODY, secret, timestamp=1_800_000_000)
    event = verify_webhook(BODY, header, secret, now=1_800_000_100)
    assert event["id"] == "evt_01"
    assert verify_webhook(BODY.decode(), header, secret, now=1_800_000_000)["type"] == "balance.low"
    assert secret.startswith("whsec_") and len(secret) > 30


@pytest.mark.parametrize(
    ("body", "header", "now", "why"),
    [
        (BODY, None, 1_800_000_000, "missing"),
        (BODY, "", 1_800_000_000, "missing"),
        (BODY, "v1=abc", 1_800_000_000, "no t="),
        (BODY, "t=1800000000", 1_800_000_000, "no t="),
        (BODY + b" ", "SIGNED", 1_800_000_000, "no signature matches"),
        (BODY, "SIGNED", 1_800_000_301, "outside the tolerance"),
        (BODY, "SIGNED", 1_799_999_699, "outside the tolerance"),
        (BODY, "x" * 2000, 1_800_000_000, "oversized"),
    ],
)
def test_bad_deliveries_are_refused(body: bytes, header: str | None, now: int, why: str) -> None:
    secret = new_secret()
    if header == "SIGNED":
        header = sign(BODY, secret, timestamp=1_800_000_000)
    with pytest.raises(WebhookSignatureError, match=why):
        verify_webhook(body, header, secret, now=now)


def test_another_secret_or_an_extra_signature() -> None:
    old, new = new_secret(), new_secret()
    header = sign(BODY, old, timestamp=1_800_000_000)
    with pytest.raises(WebhookSignatureError, match="no signature matches"):
        verify_webhook(BODY, header, new, now=1_800_000_000)
    # Several v1= values (a sender rotating secrets): any one that matches is enough.
    both = header + "," + sign(BODY, new, timestamp=1_800_000_000).split(",")[1]
    assert verify_webhook(BODY, both, new, now=1_800_000_000)["id"] == "evt_01"


def test_retry_delays_grow_and_stay_capped() -> None:
    rng = random.Random(1)
    for attempts in range(1, 40):
        delay = retry_delay_s(attempts, base_s=1, cap_s=60, rng=rng)
        assert 0.5 <= delay <= min(60, 2 ** (attempts - 1))


_PIECES = st.sampled_from(
    ["t=", "v1=", ",", " ", "=", "1", "\u00b2", "\u0661", "9" * 40, "-", "v0=", "t=1,v1=ab"]
)
_HEADERS = (
    st.none()
    | st.text(max_size=200)
    | st.binary(max_size=200)
    | st.lists(_PIECES, max_size=30).map("".join)
    | st.text(min_size=1025, max_size=1100)
)
_PAYLOADS = st.binary(max_size=300) | st.text(max_size=300) | st.just("[" * 5000 + "]" * 5000)


@given(payload=_PAYLOADS, header=_HEADERS, secret=st.text(min_size=1, max_size=40))
def test_verify_webhook_raises_only_its_own_error_for_any_input(
    payload: bytes | str, header: str | bytes | None, secret: str
) -> None:
    with contextlib.suppress(WebhookSignatureError):
        verify_webhook(payload, header, secret, now=1_800_000_000)  # type: ignore[arg-type]


def test_a_signed_payload_nested_past_the_recursion_limit_is_refused_cleanly() -> None:
    body = b"[" * 5_000 + b"]" * 5_000
    header = sign(body, "whsec_test", timestamp=1_800_000_000)
    with pytest.raises(WebhookSignatureError):
        verify_webhook(body, header, "whsec_test", now=1_800_000_000)


_STANDARD_HEADERS = st.dictionaries(
    st.sampled_from(["webhook-id", "Webhook-Timestamp", "webhook-signature", "x", "WEBHOOK-ID"]),
    _HEADERS.filter(lambda h: h is not None),
    max_size=4,
)


@given(payload=_PAYLOADS, headers=_STANDARD_HEADERS)
def test_verify_webhook_raises_only_its_own_error_for_any_headers(
    payload: bytes | str, headers: dict[str, str]
) -> None:
    with contextlib.suppress(WebhookSignatureError):
        verify_webhook(payload, {"webhook-signature": "v1,x", **headers}, new_secret())


def test_a_new_secret_is_a_standard_webhooks_secret_their_library_verifies() -> None:
    from standardwebhooks import Webhook

    body = b'{"id":"evt_01","type":"balance.low","data":{}}'
    for n in range(200):
        secret = new_secret()
        headers = signed_headers(body, secret, f"evt_{n}")
        assert Webhook(secret).verify(body, headers) == json.loads(body)
        # And birdbalance's own check reads both ways.
        assert verify_webhook(body, headers, secret)["id"] == "evt_01"
        assert verify_webhook(body, headers["Birdbalance-Signature"], secret)["id"] == "evt_01"


def test_a_secret_from_before_signs_the_old_header_only() -> None:
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    body = b'{"id":"evt_02"}'
    legacy = SECRET_PREFIX + secrets.token_urlsafe(24)  # what subscriptions got before
    headers = signed_headers(body, legacy, "evt_02")
    assert "webhook-signature" not in headers and standard_key(legacy) is None
    with pytest.raises(WebhookVerificationError, match="Missing required headers"):
        Webhook(new_secret()).verify(body, headers)
    assert verify_webhook(body, headers, legacy)["id"] == "evt_02"


def test_standard_headers_are_checked_for_age_body_and_key() -> None:
    body = b'{"id":"evt_03"}'
    secret = new_secret()
    headers = signed_headers(body, secret, "evt_03", timestamp=1_800_000_000)
    assert verify_webhook(body, headers, secret, now=1_800_000_100)["id"] == "evt_03"
    for payload, key, now, says in (
        (body, secret, 1_800_000_301, "outside the tolerance"),
        (body + b" ", secret, 1_800_000_000, "no signature matches"),
        (body, new_secret(), 1_800_000_000, "no signature matches"),
        (body, "whsec_" + "a" * 32, 1_800_000_000, "not in the Standard Webhooks format"),
    ):
        with pytest.raises(WebhookSignatureError, match=says):
            verify_webhook(payload, headers, key, now=now)
    # A rotation's two signatures, either one matching, pass.
    rotated = {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]}
    assert verify_webhook(body, rotated, secret, now=1_800_000_000)["id"] == "evt_03"
