"""The watcher's rules and memory (pure, plus its state file on disk)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from birdbalance.client import Balance
from birdbalance.watch import (
    MAX_ATTEMPTS,
    MAX_OUTBOX,
    Pending,
    Rule,
    State,
    WatchError,
    deliver,
    load_state,
    observe,
    save_state,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RULES = [Rule(Decimal(50), Decimal(5)), Rule(Decimal(10))]


def _readings(state: State, *amounts: str) -> list[list[tuple[str, str | None]]]:
    out = []
    for amount in amounts:
        events = observe(state, Balance("prepaid", "euros", Decimal(amount)), RULES, ["c"], {}, NOW)
        out.append([(e["type"], e["data"].get("threshold")) for e in events])
    return out


def test_each_line_is_crossed_once_with_hysteresis_and_depletion() -> None:
    state = State()
    assert _readings(state, "60", "49", "48", "52", "49", "55.5", "9", "0", "0", "70") == [
        [],
        [("balance.low", "50")],
        [],  # still low: never one event per reading
        [],  # above 50 but not above 55 (hysteresis)
        [],
        [("balance.recovered", "50")],
        [("balance.low", "50"), ("balance.low", "10")],
        [("balance.depleted", None)],
        [],
        [("balance.recovered", "50"), ("balance.recovered", "10")],
    ]
    assert len(state.outbox) == 7 and state.amount == "70"


def test_the_first_reading_below_a_line_raises_it_once() -> None:
    state = State()
    assert _readings(state, "8", "7") == [[("balance.low", "50"), ("balance.low", "10")], []]


def test_a_postpaid_balance_raises_nothing() -> None:
    state = State()
    balance = Balance("postpaid", "euros", Decimal(0))
    assert observe(state, balance, RULES, ["c"], {}, NOW) == [] and state.outbox == []


def test_too_many_decimals_is_an_error_not_a_rounding() -> None:
    with pytest.raises(WatchError, match="decimal places"):
        observe(State(), Balance("prepaid", "euros", Decimal("1.0000001")), RULES, [], {}, NOW)


def test_the_state_survives_a_restart_and_damage_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "watch.json"
    state = State()
    _readings(state, "60", "40")
    save_state(path, state)
    again = load_state(path)
    assert again.amount == "40" and again.low == {"below:50": True}
    assert [p.event["type"] for p in again.outbox] == ["balance.low"]
    assert _readings(again, "41") == [[]]  # a restart does not raise it again
    assert [p.name for p in tmp_path.joinpath("deep").iterdir()] == ["watch.json"]
    path.write_text("{nope")
    with pytest.raises(WatchError, match="not JSON"):
        load_state(path)
    path.write_text(json.dumps({"version": 1, "amount": None}))
    with pytest.raises(WatchError, match="damaged"):
        load_state(path)
    assert load_state(tmp_path / "missing.json") == State()


class _Flaky:
    def __init__(self, name: str, failures: int) -> None:
        self.name = name
        self.failures = failures
        self.got: list[str] = []

    def send(self, event: dict[str, Any], body: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("down")
        self.got.append(event["id"])


def test_delivery_retries_per_channel_and_saves_after_each_send() -> None:
    state = State()
    observe(state, Balance("prepaid", "euros", Decimal(5)), RULES, ["a", "b"], {}, NOW)
    a, b = _Flaky("a", 0), _Flaky("b", 1)
    saves: list[int] = []
    logged: list[str] = []

    def save(s: State) -> None:
        saves.append(len(s.outbox))

    # Two events (low 50, low 10): a takes both; b fails the first, takes the second.
    assert deliver(state, [a, b], save, logged.append) == 3
    assert len(state.outbox) == 1 and state.outbox[0].channels == ["b"]
    assert len(a.got) == 2 and len(b.got) == 1 and len(logged) == 1
    assert deliver(state, [a, b], save, logged.append) == 1
    assert state.outbox == [] and len(b.got) == 2 and len(a.got) == 2  # a got nothing twice
    assert saves  # saved as it went


def test_the_outbox_and_attempts_are_bounded() -> None:
    state = State()
    state.outbox = [Pending({"id": f"e{n}", "type": "t"}, ["x"]) for n in range(MAX_OUTBOX)]
    observe(state, Balance("prepaid", "euros", Decimal(5)), RULES, ["x"], {}, NOW)
    assert len(state.outbox) == MAX_OUTBOX and state.dropped == 2
    never = _Flaky("x", 10**9)
    state.outbox = state.outbox[:1]
    for _ in range(MAX_ATTEMPTS):
        deliver(state, [never], lambda s: None, lambda m: None)
    assert state.outbox == [] and state.dropped == 3
