"""Events by email through a real SMTP server on loopback: TLS, AUTH, retries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from birdbalance.mail import MailError, SMTPSettings, event_message, send
from birdbalance.webhooks import verify_webhook
from tests.databases import sqlite_url
from tests.mailserver import PASSWORD, MailServer
from tests.receivers import FAST_RETRIES
from tests.servers import Admin, Server, cli

EVENT = {
    "id": "evt_mail_test_1",
    "type": "balance.low",
    "created_at": "2026-11-22T12:00:00.000000Z",
    "data": {"account_id": "acc_1", "available": "4.5", "type": "euros", "threshold": "5"},
}
BODY = json.dumps(EVENT, separators=(",", ":")).encode()
SECRET = "whsec_mail-test-0123456789"


@pytest.fixture(params=["starttls", "tls"])
def smtp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MailServer]:
    server = MailServer(tmp_path, security=str(request.param)).start()
    yield server
    server.stop()


def test_an_event_mail_is_encrypted_authenticated_and_signed(smtp: MailServer) -> None:
    settings = SMTPSettings.from_env(smtp.env())
    assert settings is not None
    to = ["ops@example.test"]
    send(settings, event_message(EVENT, BODY, settings.sender, to, SECRET), to)
    [mail] = smtp.wait_for(1)
    assert mail.tls and mail.authenticated
    assert (mail.sender, mail.recipients) == ("alerts@birdbalance.test", to)
    message = mail.message
    assert message["Message-ID"] == "<evt_mail_test_1@birdbalance>"
    assert message["Subject"].startswith("[birdbalance] balance.low: 4.5 euros (threshold 5)")
    text = message.get_content()
    compact = next(line for line in text.splitlines() if line.startswith("{"))
    assert verify_webhook(compact.encode(), message["Birdbalance-Signature"], SECRET) == EVENT


def test_bad_credentials_and_untrusted_certificates_fail_loudly(smtp: MailServer) -> None:
    env = smtp.env()
    wrong = SMTPSettings.from_env({**env, "BIRDBALANCE_SMTP_PASSWORD": "not-" + PASSWORD})
    untrusted = SMTPSettings.from_env({k: v for k, v in env.items() if "CA_FILE" not in k})
    to = ["ops@example.test"]
    for settings in (wrong, untrusted):
        assert settings is not None
        with pytest.raises(OSError):
            send(settings, event_message(EVENT, BODY, settings.sender, to, None), to)
    assert smtp.received == []


def test_settings_refuse_what_would_leak_or_cannot_work() -> None:
    base = {"BIRDBALANCE_SMTP_HOST": "mail.example.test", "BIRDBALANCE_SMTP_FROM": "a@b.test"}
    assert SMTPSettings.from_env({}) is None
    assert SMTPSettings.from_env(base) == SMTPSettings("mail.example.test", "a@b.test")
    clear = {**base, "BIRDBALANCE_SMTP_SECURITY": "none"}
    with pytest.raises(MailError, match="unencrypted"):
        SMTPSettings.from_env(
            {**clear, "BIRDBALANCE_SMTP_USERNAME": "u", "BIRDBALANCE_SMTP_PASSWORD": "p"}
        )
    with pytest.raises(MailError, match="FROM"):
        SMTPSettings.from_env({"BIRDBALANCE_SMTP_HOST": "h"})
    with pytest.raises(MailError, match="both"):
        SMTPSettings.from_env({**base, "BIRDBALANCE_SMTP_USERNAME": "u"})
    with pytest.raises(MailError, match="plain address"):
        SMTPSettings.from_env({**base, "BIRDBALANCE_SMTP_FROM": "A <a@b.test>\\nBcc: x@y"})


def test_a_mailto_subscription_gets_every_event_once_across_an_outage(
    database_url: str, tmp_path: Path
) -> None:
    mail = MailServer(tmp_path)
    node = Server(
        db_url=database_url, log_path=tmp_path / "node.log", env={**FAST_RETRIES, **mail.env()}
    ).start()
    admin = Admin(node.url)
    try:
        aid = admin.account("prepaid", "euros")["id"]
        admin.topup(aid, "100")
        assert (
            admin.http.post(f"/v1/accounts/{aid}/alerts", json={"below": "50"}).status_code == 201
        )
        bad = admin.http.post("/v1/webhooks", json={"url": "mailto:a@b.test,c@d.test"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["parameter"] == "url"
        hook = admin.http.post(
            "/v1/webhooks", json={"url": "mailto:ops@example.test", "account": aid}
        )
        assert hook.status_code == 201, hook.text
        secret = hook.json()["secret"]
        # The mail server is down: the events wait in the outbox and are retried.
        assert admin.post(aid, "charges", amount="60").status_code == 201  # 40: low
        assert admin.post(aid, "charges", amount="40").status_code == 201  # 0: depleted
        deadline = time.monotonic() + 10
        while True:
            pending = admin.http.get("/v1/deliveries", params={"status": "pending"}).json()["data"]
            if len(pending) == 2 and all(d["attempts"] >= 1 and d["last_error"] for d in pending):
                break
            assert time.monotonic() < deadline, pending
            time.sleep(0.05)
        mail.start()
        received = mail.wait_for(2)
        time.sleep(0.3)  # a duplicate would arrive now
        ids = {}
        for m in received:
            assert m.tls and m.authenticated and m.recipients == ["ops@example.test"]
            compact = next(x for x in m.message.get_content().splitlines() if x.startswith("{"))
            event = verify_webhook(compact.encode(), m.message["Birdbalance-Signature"], secret)
            ids[event["id"]] = ids.get(event["id"], 0) + 1
        events = admin.http.get("/v1/events", params={"account": aid}).json()["data"]
        assert ids == {e["id"]: 1 for e in events} and len(ids) == 2
        delivered = admin.http.get("/v1/deliveries", params={"status": "delivered"}).json()
        assert len(delivered["data"]) == 2
    finally:
        admin.http.close()
        node.stop()
        mail.stop()


def test_a_server_without_smtp_refuses_mailto_and_the_cli_says_what_is_missing(
    admin: Admin, tmp_path: Path
) -> None:
    refused = admin.http.post("/v1/webhooks", json={"url": "mailto:ops@example.test"})
    assert refused.status_code == 422, refused.text
    error = refused.json()["errors"][0]
    assert error["parameter"] == "url" and "BIRDBALANCE_SMTP_HOST" in error["description"]
    # The CLI writes to the database; the servers that deliver may well have SMTP set.
    added = cli("webhooks", "add", "mailto:ops@example.test",
                db_url=sqlite_url(tmp_path / "cli.db"))  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "BIRDBALANCE_SMTP_HOST and BIRDBALANCE_SMTP_FROM are not set here" in added.stderr


def test_watch_mails_its_events(server: Server, admin: Admin, tmp_path: Path) -> None:
    mail = MailServer(tmp_path).start()
    try:
        account = admin.account("prepaid", "euros")
        admin.topup(account["id"], "3")
        env = {
            "MESSAGEBIRD_ACCESS_KEY": admin.key(account["id"])["key"],
            "BIRDBALANCE_BASE_URL": server.url,
            **mail.env(),
        }
        args = ("watch", "--below", "5", "--email", "ops@example.test", "--once")
        state = ("--state", str(tmp_path / "w.json"))
        result = cli(*args, *state, db_url="sqlite:///unused.db", env=env)
        assert result.returncode == 0, result.stderr
        [event] = [json.loads(x) for x in result.stdout.splitlines()]
        [m] = mail.wait_for(1)
        assert m.message["Birdbalance-Event-Id"] == event["id"] and m.tls and m.authenticated
        again = cli(*args, *state, db_url="sqlite:///unused.db", env=env)
        assert again.returncode == 0 and again.stdout == ""
        time.sleep(0.2)
        assert len(mail.received) == 1
        no_smtp = {k: v for k, v in env.items() if not k.startswith("BIRDBALANCE_SMTP")}
        refused = cli(*args, db_url="sqlite:///unused.db", env=no_smtp)
        assert refused.returncode == 2 and "BIRDBALANCE_SMTP_HOST" in refused.stderr
    finally:
        mail.stop()
