"""What an event says and who gets it (pure rules the storage layer applies)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from birdbalance.alerts import Crossing, EventType
from birdbalance.event_bodies import event_body, recharge_amount_minor, subscribed
from birdbalance.ledger import Mode, Payment
from birdbalance.records import Recharge


@dataclass(frozen=True)
class _Ledger:
    account_id: str = "acc_1"
    mode: Mode = Mode.LIVE
    payment: Payment = Payment.PREPAID
    asset: str = "EUR"
    scale: int = 2
    credit_limit_minor: int | None = None


def test_an_event_body_states_the_ledger_after_the_move() -> None:
    crossing = Crossing(EventType.LOW, "alr_1", 2000)
    body = json.loads(
        event_body(
            "evt_1",
            crossing,
            _Ledger(),
            1950,
            150,
            "2026-11-28T00:00:00.000000Z",
            {"entry_id": "ent_1"},
            {"recharge": {"amount": "5"}},
        )
    )
    assert body == {
        "id": "evt_1",
        "type": "balance.low",
        "created_at": "2026-11-28T00:00:00.000000Z",
        "data": {
            "account_id": "acc_1",
            "mode": "live",
            "payment": "prepaid",
            "type": "euros",
            "available": "18",
            "balance": "19.5",
            "pending": "1.5",
            "cause": {"entry_id": "ent_1"},
            "alert_id": "alr_1",
            "threshold": "20",
            "recharge": {"amount": "5"},
        },
    }
    depleted = json.loads(
        event_body(
            "evt_2", Crossing(EventType.DEPLETED), _Ledger(credit_limit_minor=500), 0, 0, "t", {}
        )
    )
    assert "alert_id" not in depleted["data"] and depleted["data"]["credit_limit"] == "5"


def test_a_subscription_takes_what_its_filter_names_or_everything() -> None:
    assert subscribed("", "balance.low")
    assert subscribed("balance.low,balance.depleted", "balance.depleted")
    assert not subscribed("balance.low", "balance.recovered")
    assert not subscribed("balance.low", "balance")  # whole names only


def test_a_recharge_asks_for_its_amount_or_up_to_its_target() -> None:
    assert recharge_amount_minor(Recharge(5000, None, 3), available_minor=100) == 5000
    assert recharge_amount_minor(Recharge(None, 5000, 3), available_minor=1200) == 3800
    assert recharge_amount_minor(Recharge(None, 5000, 3), available_minor=5000) is None
    assert recharge_amount_minor(Recharge(None, 5000, 3), available_minor=9000) is None
