"""The admin writes that took no ``Idempotency-Key`` before schema 16 take one now.

For each: a replay (same key, same request) answers again and changes nothing more, and
the same key with another body or another target is 409 and changes nothing at all.
Run on both engines against a real server.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.servers import Admin


def _send(
    admin: Admin, method: str, path: str, key: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return admin.http.request(method, path, json=body, headers={"Idempotency-Key": key})


def _funded(admin: Admin) -> str:
    account = admin.account()["id"]
    admin.topup(account, "20")
    return str(account)


def _alerts(admin: Admin, account: str) -> list[dict[str, Any]]:
    return list(admin.http.get(f"/v1/accounts/{account}/alerts").json()["data"])


def _webhooks(admin: Admin) -> list[str]:
    return [w["id"] for w in admin.http.get("/v1/webhooks").json()["data"]]


def test_creating_an_alert_or_a_webhook_twice_makes_one(admin: Admin) -> None:
    account = _funded(admin)
    key = str(uuid.uuid4())
    path = f"/v1/accounts/{account}/alerts"
    first = _send(admin, "POST", path, key, {"below": "5"})
    again = _send(admin, "POST", path, key, {"below": "5"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = _send(admin, "POST", path, key, {"below": "6"})
    assert other.status_code == 409, other.text
    assert [a["id"] for a in _alerts(admin, account)] == [first.json()["id"]]

    key = str(uuid.uuid4())
    body = {"url": "https://example.com/hooks", "account": account}
    made = _send(admin, "POST", "/v1/webhooks", key, body)
    replayed = _send(admin, "POST", "/v1/webhooks", key, body)
    assert made.status_code == replayed.status_code == 201
    # The replay shows the secret in force: it is the one that signs.
    assert made.json() == replayed.json() and made.json()["secret"].startswith("whsec_")
    refused = _send(admin, "POST", "/v1/webhooks", key, {**body, "url": "https://example.org"})
    assert refused.status_code == 409, refused.text
    assert _webhooks(admin).count(made.json()["id"]) == 1
    admin.http.delete(f"/v1/webhooks/{made.json()['id']}")


def _alert(admin: Admin) -> tuple[str, str, str]:
    account = _funded(admin)
    made = admin.http.post(
        f"/v1/accounts/{account}/alerts", json={"below": "50", "recharge": {"amount": "10"}}
    )
    assert made.status_code == 201, made.text
    alert = made.json()["id"]
    return alert, f"/v1/alerts/{alert}", account


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("DELETE", "", None),
        ("POST", "/recharge-failures", {"reason": "card declined"}),
    ],
)
def test_alert_writes_replay_once(
    admin: Admin, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    alert, path, account = _alert(admin)
    other, other_path, other_account = _alert(admin)
    key = str(uuid.uuid4())
    first = _send(admin, method, path + suffix, key, body)
    again = _send(admin, method, path + suffix, key, body)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json() == again.json()
    if suffix:
        # One failure counted, not two.
        assert first.json()["recharge"]["failures"] == 1
        rule = next(a for a in _alerts(admin, account) if a["id"] == alert)
        assert rule["recharge"]["failures"] == 1
    # The same key for another rule: refused, and the other rule untouched.
    refused = _send(admin, method, other_path + suffix, key, body)
    assert refused.status_code == 409, refused.text
    untouched = next(a for a in _alerts(admin, other_account) if a["id"] == other)
    assert untouched["recharge"]["failures"] == 0


def test_webhook_writes_and_key_revocation_replay_once(admin: Admin) -> None:
    account = _funded(admin)
    hooks = [
        admin.http.post("/v1/webhooks", json={"url": f"https://example.com/{n}"}).json()
        for n in range(2)
    ]
    rotate = str(uuid.uuid4())
    first = _send(admin, "POST", f"/v1/webhooks/{hooks[0]['id']}/rotate-secret", rotate)
    again = _send(admin, "POST", f"/v1/webhooks/{hooks[0]['id']}/rotate-secret", rotate)
    assert first.status_code == again.status_code == 200
    # Rotated once: the replay shows the same new secret.
    assert first.json()["secret"] == again.json()["secret"] != hooks[0]["secret"]
    refused = _send(admin, "POST", f"/v1/webhooks/{hooks[1]['id']}/rotate-secret", rotate)
    assert refused.status_code == 409
    delete = str(uuid.uuid4())
    for _ in range(2):
        gone = _send(admin, "DELETE", f"/v1/webhooks/{hooks[0]['id']}", delete)
        assert gone.status_code == 200 and gone.json()["id"] == hooks[0]["id"]
    # Without the key, a second delete is what it always was: not found.
    assert admin.http.delete(f"/v1/webhooks/{hooks[0]['id']}").status_code == 404
    assert _send(admin, "DELETE", f"/v1/webhooks/{hooks[1]['id']}", delete).status_code == 409
    assert hooks[1]["id"] in _webhooks(admin)
    admin.http.delete(f"/v1/webhooks/{hooks[1]['id']}")

    key_id = admin.key(account)["id"]
    revoke = str(uuid.uuid4())
    for _ in range(2):
        revoked = _send(admin, "DELETE", f"/v1/keys/{key_id}", revoke)
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"


def test_a_spending_limit_is_set_once_per_key(admin: Admin) -> None:
    parent = _funded(admin)
    shared = admin.account(parent=parent, balance="shared")["id"]
    path = f"/v1/accounts/{shared}/spending-limit"
    key = str(uuid.uuid4())
    limit = {"amount": "5", "period": "day"}
    assert _send(admin, "PUT", path, key, limit).status_code == 200
    assert _send(admin, "PUT", path, key, limit).status_code == 200
    changed = _send(admin, "PUT", path, key, {"amount": "7", "period": "day"})
    assert changed.status_code == 409, changed.text
    assert _send(admin, "DELETE", path, key).status_code == 409
    now = admin.http.get(f"/v1/accounts/{shared}").json()["shared"]["spending_limit"]
    assert now == limit
