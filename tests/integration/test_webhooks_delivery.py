"""Signed webhooks end to end: a real receiver that goes down and comes back.

Every event arrives, each signature verifies, and after deduplication by event id each
event is seen exactly once. On both engines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from birdbalance import verify_webhook
from tests.receivers import FAST_RETRIES, Receiver
from tests.servers import Admin, Server


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = Server(db_url=database_url, log_path=tmp_path / "node.log", env=FAST_RETRIES)
    srv.start()
    yield srv
    srv.stop()


def _events(admin: Admin, aid: str) -> list[dict]:  # type: ignore[type-arg]
    return list(reversed(admin.http.get("/v1/events", params={"account": aid}).json()["data"]))


def test_every_event_arrives_once_signed_across_a_receiver_outage(node: Server) -> None:
    admin = Admin(node.url)
    receiver = Receiver().start()
    try:
        aid = admin.account("prepaid", "euros")["id"]
        other = admin.account()["id"]
        admin.topup(aid, "100")
        admin.http.post(f"/v1/accounts/{aid}/alerts", json={"below": "50"})
        hook = admin.http.post(
            "/v1/webhooks", json={"url": receiver.url + "/account", "account": aid}
        )
        assert hook.status_code == 201, hook.text
        secret = hook.json()["secret"]
        only_depleted = admin.http.post(
            "/v1/webhooks",
            json={"url": receiver.url + "/depleted", "events": ["balance.depleted"]},
        ).json()
        secrets = {
            "/hooks/birdbalance/account": secret,
            "/hooks/birdbalance/depleted": only_depleted["secret"],
        }
        elsewhere = admin.http.post("/v1/webhooks", json={"url": receiver.url, "account": other})
        assert elsewhere.status_code == 201
        assert "secret" not in admin.http.get("/v1/webhooks").json()["data"][0]

        started = time.monotonic()
        assert admin.post(aid, "charges", amount="60").status_code == 201  # 40: low
        first = receiver.wait_for(1)
        print(f"alert latency: {1000 * (first[0].at - started):.0f} ms (write to receipt)")

        receiver.stop()
        admin.topup(aid, "20")  # 60: recovered
        assert admin.post(aid, "charges", amount="20").status_code == 201  # 40: low
        assert admin.post(aid, "charges", amount="40").status_code == 201  # 0: depleted
        deadline = time.monotonic() + 10
        while True:  # the receiver is down: attempts fail and are retried
            failing = admin.http.get("/v1/deliveries", params={"status": "pending"}).json()
            if any(d["attempts"] >= 2 and d["last_error"] for d in failing["data"]):
                break
            assert time.monotonic() < deadline, failing
            time.sleep(0.05)

        receiver.start()
        outbox = _events(admin, aid)
        assert [e["type"] for e in outbox] == [
            "balance.low",
            "balance.recovered",
            "balance.low",
            "balance.depleted",
        ]
        # The account's webhook gets all four; the filtered one the depletion: 4 ids.
        receiver.wait_for(len(outbox))
        time.sleep(0.3)  # anything sent twice would arrive now
        seen: dict[str, int] = {}
        for received in receiver.received:
            event = verify_webhook(received.body, received.signature, secrets[received.path])
            assert event["id"] == received.event_id
            assert event == next(e for e in outbox if e["id"] == event["id"])
            seen[event["id"]] = seen.get(event["id"], 0) + 1
        assert set(seen) == {e["id"] for e in outbox}
        # The depletion went to two subscriptions; everything else to one, exactly once.
        assert seen == {**{e["id"]: 1 for e in outbox[:3]}, outbox[3]["id"]: 2}
        delivered = admin.http.get("/v1/deliveries", params={"status": "delivered"}).json()
        assert len(delivered["data"]) == 5
        assert admin.http.get("/v1/deliveries", params={"status": "pending"}).json()["data"] == []
        by_hook = admin.http.get("/v1/deliveries", params={"webhook": only_depleted["id"]}).json()[
            "data"
        ]
        assert [d["event_id"] for d in by_hook] == [outbox[3]["id"]]
        # /metrics counted the same story: five deliveries, failures retried, none dead.
        metrics = admin.http.get("/metrics").text
        attempts = {
            s.labels["outcome"]: s.value
            for f in text_string_to_metric_families(metrics)
            for s in f.samples
            if s.name == "birdbalance_webhook_attempts_total"
        }
        assert attempts["delivered"] == 5 and attempts["retrying"] >= 2
        assert "dead" not in attempts
        assert "birdbalance_webhook_outbox_pending 0" in metrics

        # Redeliver one: it arrives again, with a fresh signature, and is delivered again.
        again = admin.http.post(f"/v1/deliveries/{by_hook[0]['id']}/redeliver")
        assert again.status_code == 200 and again.json()["status"] == "pending"
        deadline = time.monotonic() + 10
        while sum(r.event_id == outbox[3]["id"] for r in receiver.received) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        last = [r for r in receiver.received if r.event_id == outbox[3]["id"]][-1]
        assert verify_webhook(last.body, last.signature, secrets[last.path])["type"] == (
            "balance.depleted"
        )
    finally:
        receiver.stop()
        admin.http.close()


def test_dead_letters_and_redelivery_from_the_cli(database_url: str, tmp_path: Path) -> None:
    import json

    from tests.servers import cli

    receiver = Receiver()  # not started: every attempt fails
    env = {**FAST_RETRIES, "BIRDBALANCE_WEBHOOK_MAX_ATTEMPTS": "2"}
    srv = Server(db_url=database_url, log_path=tmp_path / "dead.log", env=env).start()
    admin = Admin(srv.url)
    try:

        def run(*args: str) -> dict:  # type: ignore[type-arg]
            result = cli(*args, "--json", db_url=database_url)
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)  # type: ignore[no-any-return]

        created = run("webhooks", "add", receiver.url, "--events", "balance.depleted")
        assert created["id"].startswith("whk_") and created["secret"].startswith("whsec_")
        assert created["events"] == ["balance.depleted"]
        bad = cli("webhooks", "add", "ftp://x", db_url=database_url)
        assert bad.returncode == 1 and "http" in bad.stderr
        bad = cli("webhooks", "add", receiver.url, "--events", "balance.lo", db_url=database_url)
        assert bad.returncode == 1 and "unknown event type" in bad.stderr
        aid = admin.account()["id"]
        admin.topup(aid, "1")
        assert admin.post(aid, "charges", amount="1").status_code == 201  # depleted
        deadline = time.monotonic() + 10
        while not run("deliveries", "list", "--status", "dead")["data"]:
            assert time.monotonic() < deadline, run("deliveries", "list")
            time.sleep(0.05)
        dead = run("deliveries", "list", "--status", "dead")["data"][0]
        assert dead["attempts"] == 2 and "ConnectError" in dead["last_error"]
        receiver.start()
        again = run("deliveries", "redeliver", dead["id"])
        assert again["status"] == "pending" and again["attempts"] == 0
        received = receiver.wait_for(1)
        assert verify_webhook(received[0].body, received[0].signature, created["secret"])
        deadline = time.monotonic() + 10
        while run("deliveries", "list", "--status", "delivered")["data"] == []:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        listed = cli("webhooks", "list", db_url=database_url).stdout
        assert created["id"] in listed and "whsec_" not in listed
        assert "removed" in cli("webhooks", "remove", created["id"], db_url=database_url).stdout
        gone = cli("deliveries", "redeliver", dead["id"], db_url=database_url)
        assert gone.returncode == 1 and "deleted" in gone.stderr
    finally:
        receiver.stop()
        admin.http.close()
        srv.stop()
