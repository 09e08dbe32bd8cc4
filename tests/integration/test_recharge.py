"""Auto-recharge on alert rules: topup.requested in the crossing write, failures, disabling."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from birdbalance.errors import StateConflict
from birdbalance.ledger import EntryKind, Mode, Payment
from birdbalance.records import Idempotency, NewAccount, NewAlertRule, NewEntry, Recharge
from birdbalance.settings import Settings
from birdbalance.storage import Store, open_store
from tests.databases import MIGRATIONS, raw_execute

E = 1_000_000  # one euro in minor units


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(Settings(database_url=database_url))
    s.migrate()
    yield s
    s.close()


def _account(store: Store, euros: int) -> str:
    account = store.create_account(NewAccount(None, Payment.PREPAID, "EUR", 6, None, {}), None).id
    if euros:
        _post(store, account, EntryKind.TOPUP, euros * E)
    return account


_keys = iter(range(10**9))


def _post(store: Store, account: str, kind: EntryKind, amount_minor: int) -> None:
    new = NewEntry(account, Mode.LIVE, kind, amount_minor, None, None, {})
    key = f"k{next(_keys)}"
    store.append_entry(new, Idempotency(key, "fp-" + key))


def _events(store: Store, account: str) -> list[tuple[str, dict[str, Any]]]:
    page = store.list_events(account, None, 100)
    return [(e.type, json.loads(e.payload)["data"]) for e in reversed(page.items)]


def _rule(store: Store, account: str, recharge: Recharge | None, below: int = 50) -> str:
    return store.create_alert_rule(NewAlertRule(account, Mode.LIVE, below * E, 0, recharge), 20).id


def test_going_low_asks_once_for_a_fixed_top_up_and_recovering_answers(store: Store) -> None:
    account = _account(store, 100)
    _rule(store, account, Recharge(30 * E, None, 3))
    _post(store, account, EntryKind.CHARGE, 60 * E)  # 40: low
    _post(store, account, EntryKind.CHARGE, 1 * E)  # 39: still low, no second request
    events = _events(store, account)
    assert [t for t, _ in events] == ["balance.low", "topup.requested"]
    requested = events[1][1]
    assert requested["recharge"] == {"amount": "30", "attempt": 1, "max_failures": 3}
    assert requested["available"] == "40" and requested["threshold"] == "50"
    _post(store, account, EntryKind.TOPUP, 30 * E)  # the payment system's answer: 69
    assert [t for t, _ in _events(store, account)][-1] == "balance.recovered"
    assert store.verify() == []


def test_up_to_asks_for_the_difference(store: Store) -> None:
    account = _account(store, 100)
    _rule(store, account, Recharge(None, 200 * E, 3))
    _post(store, account, EntryKind.CHARGE, 63 * E)  # 37
    assert _events(store, account)[-1][1]["recharge"]["amount"] == "163"


def test_failures_ask_again_then_disable_and_recovery_resets_them(store: Store) -> None:
    account = _account(store, 100)
    rule = _rule(store, account, Recharge(30 * E, None, 3))
    _post(store, account, EntryKind.CHARGE, 60 * E)  # low: attempt 1
    after = store.record_recharge_failure(rule, "card declined")
    assert after.recharge is not None and after.recharge.failures == 1
    assert _events(store, account)[-1][1]["recharge"]["attempt"] == 2  # asked again
    assert _events(store, account)[-1][1]["cause"] == {"recharge_failed": "card declined"}
    # Recovering (any credit) resets the count.
    _post(store, account, EntryKind.TOPUP, 20 * E)  # 60: recovered
    rules = store.list_alert_rules(account)
    assert rules[0].recharge is not None and rules[0].recharge.failures == 0
    _post(store, account, EntryKind.CHARGE, 20 * E)  # 40: low again, attempt 1
    store.record_recharge_failure(rule, None)
    store.record_recharge_failure(rule, None)
    disabled = store.record_recharge_failure(rule, "expired card")
    assert disabled.recharge is not None and disabled.recharge.disabled_at is not None
    types = [t for t, _ in _events(store, account)]
    assert types[-1] == "recharge.disabled" and types.count("topup.requested") == 5
    assert _events(store, account)[-1][1]["recharge"] == {"failures": 3, "max_failures": 3}
    with pytest.raises(StateConflict):
        store.record_recharge_failure(rule, None)
    # Disabled: the rule still alerts, but asks for nothing.
    _post(store, account, EntryKind.TOPUP, 20 * E)
    _post(store, account, EntryKind.CHARGE, 20 * E)
    assert [t for t, _ in _events(store, account)][-2:] == ["balance.recovered", "balance.low"]
    assert store.verify() == []


def test_a_rule_made_on_a_low_ledger_asks_at_once(store: Store) -> None:
    account = _account(store, 10)
    _rule(store, account, Recharge(None, 100 * E, 2))
    assert _events(store, account) == [
        (
            "topup.requested",
            _events(store, account)[0][1],
        )
    ]
    assert _events(store, account)[0][1]["recharge"]["amount"] == "90"
    plain = _rule(store, _account(store, 10), None)
    with pytest.raises(StateConflict):
        store.record_recharge_failure(plain, None)


def test_a_group_commit_asks_in_the_batch_that_crosses(store: Store) -> None:
    account = _account(store, 100)
    _rule(store, account, Recharge(30 * E, None, 3))
    batch = [
        (
            NewEntry(account, Mode.LIVE, EntryKind.CHARGE, 30 * E, None, None, {}),
            Idempotency(f"b{n}", f"fp-b{n}"),
        )
        for n in range(3)
    ]
    store.append_entries(batch)  # 70, 40 (low, ask), 10 (still low)
    types = [t for t, _ in _events(store, account)]
    assert types == ["balance.low", "topup.requested"]
    assert store.verify() == []


def test_upgrading_from_v4_keeps_events_deliveries_and_append_only(database_url: str) -> None:
    s = open_store(Settings(database_url=database_url))
    try:
        assert s.migrate(target=4) == MIGRATIONS[:4]
        acc = "acc_01JD3Z8Q6W6B7Y2M0N4R5T8V9X"
        now = "2026-01-02T03:04:05.000006Z"
        for sql in (
            f"INSERT INTO accounts VALUES ('{acc}', 'Old', 'prepaid', 'EUR', 6, NULL, '{{}}',"
            f" '{now}')",
            f"INSERT INTO balances (account_id, mode, balance_minor, seq) VALUES ('{acc}',"
            " 'live', 0, 0)",
            f"INSERT INTO balances (account_id, mode, balance_minor, seq) VALUES ('{acc}',"
            " 'test', 0, 0)",
            f"INSERT INTO alert_rules (id, account_id, mode, below_minor, hysteresis_minor, low,"
            f" created_at) VALUES ('alr_1', '{acc}', 'live', 5, 0, 1, '{now}')",
            f"INSERT INTO events VALUES ('evt_1', 'balance.low', '{acc}', 'live', 'alr_1',"
            f" '{{}}', '{now}')",
            f"INSERT INTO webhooks VALUES ('whk_1', 'https://x.test', NULL, '', 's', '{now}',"
            " NULL)",
            "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at,"
            f" created_at) VALUES ('dlv_1', 'evt_1', 'whk_1', 'pending', 0, '{now}', '{now}')",
        ):
            raw_execute(database_url, sql)
        assert s.migrate() == MIGRATIONS[4:]
        [event] = s.list_events(acc, None, 10).items
        assert (event.id, event.type, event.rule_id) == ("evt_1", "balance.low", "alr_1")
        assert [d.event_id for d in s.list_deliveries(None, None, None, 10).items] == ["evt_1"]
        [rule] = s.list_alert_rules(acc)
        assert rule.low and rule.recharge is None
        # Still append-only, and the new types are allowed.
        with pytest.raises(Exception, match="append-only"):
            raw_execute(database_url, "UPDATE events SET payload = 'x'")
        with pytest.raises(Exception, match="append-only"):
            raw_execute(database_url, "DELETE FROM events")
        raw_execute(
            database_url,
            f"INSERT INTO events VALUES ('evt_2', 'topup.requested', '{acc}', 'live', 'alr_1',"
            f" '{{}}', '{now}')",
        )
        with pytest.raises(Exception, match=r"events_type_check|CHECK constraint"):
            raw_execute(
                database_url,
                f"INSERT INTO events VALUES ('evt_3', 'bogus', '{acc}', 'live', NULL, '{{}}',"
                f" '{now}')",
            )
    finally:
        s.close()


def test_the_api_and_cli_drive_a_recharge_end_to_end(server, admin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from birdbalance.webhooks import verify_webhook
    from tests.receivers import Receiver
    from tests.servers import cli

    receiver = Receiver().start()
    try:
        aid = admin.account("prepaid", "euros")["id"]
        admin.topup(aid, "100")
        for bad in (
            {"below": "20", "recharge": {"amount": "5", "up_to": "50"}},
            {"below": "20", "recharge": {"up_to": "20"}},
            {"below": "20", "recharge": {"amount": "5", "max_failures": 0}},
            {"below": "20", "recharge": "50"},
        ):
            r = admin.http.post(f"/v1/accounts/{aid}/alerts", json=bad)
            assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "recharge", bad
        hook = admin.http.post(
            "/v1/webhooks",
            json={"url": receiver.url, "account": aid, "events": ["topup.requested"]},
        ).json()
        rule = admin.http.post(
            f"/v1/accounts/{aid}/alerts",
            json={"below": "20", "recharge": {"up_to": "120", "max_failures": 2}},
        ).json()
        assert rule["recharge"] == {
            "amount": None,
            "up_to": "120",
            "max_failures": 2,
            "failures": 0,
            "disabled_at": None,
        }
        assert admin.post(aid, "charges", amount="85").status_code == 201  # 15: low
        [first] = receiver.wait_for(1)
        event = verify_webhook(first.body, first.signature, hook["secret"])
        assert event["type"] == "topup.requested"
        assert event["data"]["recharge"] == {"amount": "105", "attempt": 1, "max_failures": 2}
        failed = admin.http.post(
            f"/v1/alerts/{rule['id']}/recharge-failures", json={"reason": "declined"}
        )
        assert failed.status_code == 200 and failed.json()["recharge"]["failures"] == 1
        second = receiver.wait_for(2)[-1]
        retry = verify_webhook(second.body, second.signature, hook["secret"])
        assert retry["data"]["recharge"]["attempt"] == 2
        assert retry["data"]["cause"] == {"recharge_failed": "declined"}
        # The CLI reports the second failure: the recharge is disabled.
        out = cli("alerts", "recharge-failed", rule["id"], "--json", db_url=server.db_url)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["recharge"]["disabled_at"] is not None
        again = admin.http.post(f"/v1/alerts/{rule['id']}/recharge-failures", json={})
        assert again.status_code == 409
        types = [
            e["type"] for e in admin.http.get("/v1/events", params={"account": aid}).json()["data"]
        ]
        assert types[0] == "recharge.disabled" and types.count("topup.requested") == 2
    finally:
        receiver.stop()
