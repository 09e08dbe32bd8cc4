"""Real deliveries verified by the ``standardwebhooks`` library (PyPI), the tool
receivers use: a new subscription's, and an older one's after ``rotate-secret``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from birdbalance import verify_webhook
from tests.databases import raw_execute
from tests.receivers import Receiver
from tests.servers import Admin, Server, cli

LEGACY_SECRET = "whsec_" + "Ab-_" * 8  # 32 URL-safe characters, as secrets were issued before


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    yield found
    found.stop()


def _low(admin: Admin, account: str, receiver: Receiver, count: int) -> None:
    """Drop the account below its rule, then back (a balance.low, then a recovered)."""
    assert admin.post(account, "charges", amount="60").status_code == 201
    assert admin.post(account, "topups", amount="60").status_code == 201
    receiver.wait_for(count, timeout_s=15)


def test_deliveries_verify_with_the_standard_webhooks_library(
    server: Server, admin: Admin, receiver: Receiver
) -> None:
    account = admin.account()["id"]
    admin.topup(account, "100")
    assert (
        admin.http.post(f"/v1/accounts/{account}/alerts", json={"below": "50"}).status_code == 201
    )
    made = admin.http.post("/v1/webhooks", json={"url": receiver.url, "account": account})
    assert made.status_code == 201, made.text
    hook, secret = made.json()["id"], made.json()["secret"]
    _low(admin, account, receiver, 2)
    for delivery in receiver.received[:2]:
        event = Webhook(secret).verify(delivery.body, delivery.headers)
        assert event["id"] == delivery.headers["webhook-id"] == delivery.event_id
        assert verify_webhook(delivery.body, delivery.headers, secret)["id"] == event["id"]
        assert verify_webhook(delivery.body, delivery.signature, secret)["id"] == event["id"]

    # A subscription from before Standard Webhooks: its secret keeps signing the old
    # header only, which their library refuses and birdbalance's check accepts.
    raw_execute(
        server.db_url, f"UPDATE webhooks SET secret = '{LEGACY_SECRET}' WHERE id = '{hook}'"
    )
    _low(admin, account, receiver, 4)
    old = receiver.received[-1]
    assert "webhook-signature" not in {k.lower() for k in old.headers}
    with pytest.raises(WebhookVerificationError, match="Missing required headers"):
        Webhook(secret).verify(old.body, old.headers)
    assert verify_webhook(old.body, old.headers, LEGACY_SECRET)["type"]

    # rotate-secret moves it over: the next deliveries verify with their library.
    rotated = admin.http.post(f"/v1/webhooks/{hook}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != LEGACY_SECRET
    assert "secret" not in admin.http.get("/v1/webhooks").json()["data"][0]
    _low(admin, account, receiver, 6)
    latest = receiver.received[-1]
    assert Webhook(new_secret).verify(latest.body, latest.headers)["type"]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(latest.body, latest.headers)


def test_the_rotate_secret_command(database_url: str) -> None:
    import json

    made = cli("webhooks", "add", "https://example.com/hooks", "--json", db_url=database_url)
    assert made.returncode == 0, made.stderr
    hook = json.loads(made.stdout)["id"]
    raw_execute(database_url, f"UPDATE webhooks SET secret = '{LEGACY_SECRET}' WHERE id = '{hook}'")
    rotated = cli("webhooks", "rotate-secret", hook, "--json", db_url=database_url)
    assert rotated.returncode == 0, rotated.stderr
    secret = json.loads(rotated.stdout)["secret"]
    Webhook(secret)  # loads: a base64 key after whsec_
    missing = cli("webhooks", "rotate-secret", "whk_" + "0" * 26, db_url=database_url)
    assert missing.returncode != 0
