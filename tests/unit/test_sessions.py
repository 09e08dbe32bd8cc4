"""Dashboard session cookies and CSRF tokens."""

from __future__ import annotations

import hashlib

import pytest

from birdbalance.http.sessions import SessionSigner, key_subject

SECRET = b"s" * 32


def test_a_cookie_reads_back_until_it_expires() -> None:
    signer = SessionSigner(SECRET, 3600)
    session, cookie = signer.issue("account", "ab" * 32, now_s=1_000)
    assert signer.read(cookie, now_s=1_000) == session
    assert signer.read(cookie, now_s=1_000 + 3599) == session
    assert signer.read(cookie, now_s=1_000 + 3600) is None


def test_tampered_foreign_and_oversized_cookies_are_refused() -> None:
    signer = SessionSigner(SECRET, 3600)
    _, cookie = signer.issue("account", "ab" * 32, now_s=0)
    body, signature = cookie.split(".")
    admin_body = body.replace(body[:8], "eyJyIjoi")  # any change to the payload
    for bad in (
        None,
        "",
        "no-dot",
        "a.b.c",
        f"{body}.{signature[:-1]}A" if signature[-1] != "A" else f"{body}.{signature[:-1]}B",
        f"{admin_body}x.{signature}",
        "x" * 2000,
    ):
        assert signer.read(bad, now_s=1) is None
    other = SessionSigner(b"t" * 32, 3600)
    assert other.read(cookie, now_s=1) is None


def test_each_session_has_its_own_nonce_and_csrf_token() -> None:
    signer = SessionSigner(SECRET, 3600)
    first, _ = signer.issue("admin", signer.admin_subject("token-" * 4), now_s=0)
    second, _ = signer.issue("admin", signer.admin_subject("token-" * 4), now_s=0)
    assert first.nonce != second.nonce and first.subject == second.subject
    token = signer.csrf_token(first.nonce)
    assert signer.csrf_ok(first.nonce, token)
    assert not signer.csrf_ok(second.nonce, token)
    assert not signer.csrf_ok(first.nonce, None)
    assert not signer.csrf_ok(first.nonce, token + "x" * 64)
    # Every worker of one run shares the secret, so any of them accepts the token.
    assert SessionSigner(SECRET, 60).csrf_token(first.nonce) == token


def test_subjects_never_hold_the_secret() -> None:
    signer = SessionSigner(SECRET, 3600)
    token = "the-admin-token-0123456789"
    subject = signer.admin_subject(token)
    assert token not in subject and len(subject) == 64
    assert subject != SessionSigner(b"u" * 32, 3600).admin_subject(token)
    digest = hashlib.sha256(b"key").digest()
    assert key_subject(digest) == digest.hex()


def test_weak_secrets_and_lifetimes_are_refused() -> None:
    with pytest.raises(AssertionError):
        SessionSigner(b"short", 3600)
    with pytest.raises(AssertionError):
        SessionSigner(SECRET, 10)
