"""The watcher's rules and memory: readings, and the state file on disk (strict, bounded,
trusted only if nobody else could write it, one watcher at a time)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from birdbalance.client import Balance
from birdbalance.watch import (
    MAX_ATTEMPTS,
    MAX_OUTBOX,
    MAX_STATE_BYTES,
    Pending,
    Rule,
    State,
    WatchError,
    deliver,
    load_state,
    lock_state,
    observe,
    save_state,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RULES = [Rule(Decimal(50), Decimal(5)), Rule(Decimal(10))]


def _readings(state: State, *amounts: str) -> list[list[tuple[str, str | None]]]:
    out = []
    for amount in amounts:
        balance = Balance("prepaid", "euros", Decimal(amount))
        events = observe(state, balance, RULES, ["command"], {}, NOW)
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
    assert observe(state, balance, RULES, ["command"], {}, NOW) == [] and state.outbox == []


@pytest.mark.parametrize(
    ("payment", "asset", "amount", "says"),
    [
        ("prepaid", "euros", "1.0000001", "decimal places"),
        ("prepaid", "euros", "1e16", "outside"),
        ("prepaid", "euros", "-1e40", "outside"),
        ("prepaid", "euros", "NaN", "outside"),
        ("prepaid", "euros", "Infinity", "outside"),
        ("weekly", "euros", "5", "neither prepaid nor postpaid"),
        ("prepaid", "", "5", "asset type"),
        ("prepaid", "e" * 101, "5", "asset type"),
    ],
)
def test_an_odd_reading_is_skipped_and_changes_nothing(
    payment: str, asset: str, amount: str, says: str
) -> None:
    state = State()
    _readings(state, "40")
    before = state.to_json()
    with pytest.raises(WatchError, match=f"skipped a reading: .*{says}"):
        observe(state, Balance(payment, asset, Decimal(amount)), RULES, ["command"], {}, NOW)
    assert state.to_json() == before
    assert _readings(state, "60") == [[("balance.recovered", "50")]]  # and it goes on


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


def _saved(tmp_path: Path) -> dict[str, Any]:
    state = State()
    _readings(state, "60", "40")
    save_state(tmp_path / "w.json", state)
    return json.loads((tmp_path / "w.json").read_text())  # type: ignore[no-any-return]


_EVENT = "$.outbox[0].event"
DAMAGE: dict[str, tuple[str, Any]] = {
    "amount as a number": ("$.amount", 40),
    "amount with a huge exponent": ("$.amount", "1e999999999"),
    "amount with too many decimals": ("$.amount", "1.0000001"),
    "amount not a number": ("$.amount", "forty"),
    "flag as text": ("$.low.below:50", "yes"),
    "low as a list": ("$.low", [True]),
    "outbox as an object": ("$.outbox", {}),
    "outbox too long": ("$.outbox", [None] * 1001),
    "unknown channel": ("$.outbox[0].channels", ["sms"]),
    "attempts negative": ("$.outbox[0].attempts", -1),
    "attempts as true": ("$.outbox[0].attempts", True),
    "attempts as text": ("$.outbox[0].attempts", "3"),
    "error not text": ("$.outbox[0].last_error", 5),
    "forged event id": (f"{_EVENT}.id", "evt_anything"),
    "unknown event type": (f"{_EVENT}.type", "balance.stolen"),
    "event data not text": (f"{_EVENT}.data.available", 40),
    "event data too long": (f"{_EVENT}.data.available", "9" * 1001),
    "extra event field": (f"{_EVENT}.extra", "x"),
    "extra field": ("$.extra", 1),
    "dropped negative": ("$.dropped", -5),
    "version 2": ("$.version", 2),
    "not an object": ("$", [1, 2]),
}


def _put(data: Any, where: str, value: Any) -> Any:
    if where == "$":
        return value
    steps = where[2:].replace("[", ".").replace("]", "").split(".")
    here = data
    for step in steps[:-1]:
        here = here[int(step)] if step.isdigit() else here[step]
    last = steps[-1]
    if last == "below:50":  # the flag's key has a dot-free name with a colon
        here["below:50"] = value
    else:
        here[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_wrongly_typed_state_file_is_one_clear_error(tmp_path: Path, damage: str) -> None:
    where, value = DAMAGE[damage]
    data = _put(_saved(tmp_path), where.replace(".below:50", ".below:50"), value)
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    with pytest.raises(WatchError, match=r"the state file .* (is damaged|not a birdbalance)"):
        load_state(path)


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe garbage", b"[" * 100_000 + b"]" * 100_000, b" " * (MAX_STATE_BYTES + 1)],
    ids=["not utf-8", "deep nesting", "too large"],
)
def test_unreadable_state_files_are_refused_in_bounds(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "w.json"
    path.write_bytes(content)
    with pytest.raises(WatchError, match=r"not JSON|larger than"):
        load_state(path)


def test_a_state_file_others_could_write_is_refused(tmp_path: Path) -> None:
    _saved(tmp_path)
    path = tmp_path / "w.json"
    path.chmod(0o666)
    with pytest.raises(WatchError, match="writable by others"):
        load_state(path)
    path.chmod(0o600)
    tmp_path.chmod(0o777)
    with pytest.raises(WatchError, match=r"directory .* writable by others"):
        load_state(path)
    tmp_path.chmod(0o1777)  # sticky, like /tmp: others cannot replace our file
    assert load_state(path).amount == "40"
    tmp_path.chmod(0o700)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
        with pytest.raises(WatchError, match="belongs to another user"):
            load_state(path)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(WatchError, match="not a regular file"):
        load_state(fifo)  # refused at once, not a read that waits for a writer


def test_one_watcher_per_state_file(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    with lock_state(path, wait_s=0):
        started = time.monotonic()
        with pytest.raises(WatchError, match="another birdbalance watch"), lock_state(path, 0.3):
            pass
        assert 0.3 <= time.monotonic() - started < 1.5
    with lock_state(path, wait_s=0):  # let go when the first one ended
        pass


class _Flaky:
    def __init__(self, name: str, failures: int) -> None:
        self.name = name
        self.timeout_s = 1.0
        self.failures = failures
        self.got: list[str] = []

    def send(self, event: dict[str, Any], body: bytes, deadline: float) -> None:
        assert deadline > time.monotonic()
        if self.failures:
            self.failures -= 1
            raise OSError("down")
        self.got.append(event["id"])


def test_delivery_retries_per_channel_and_saves_after_each_send() -> None:
    state = State()
    observe(state, Balance("prepaid", "euros", Decimal(5)), RULES, ["webhook", "command"], {}, NOW)
    a, b = _Flaky("webhook", 0), _Flaky("command", 1)
    saves: list[int] = []
    logged: list[str] = []

    def save(s: State) -> None:
        saves.append(len(s.outbox))

    # Two events (low 50, low 10): a takes both; b fails the first and, failed once this
    # round, is not tried again until the next one (its events keep their order).
    assert deliver(state, [a, b], save, logged.append) == 2
    assert [p.channels for p in state.outbox] == [["command"], ["command"]]
    assert len(a.got) == 2 and b.got == [] and len(logged) == 1
    assert deliver(state, [a, b], save, logged.append) == 2
    assert state.outbox == [] and len(b.got) == 2 and len(a.got) == 2  # a got nothing twice
    assert saves  # saved as it went


def test_the_outbox_and_attempts_are_bounded() -> None:
    state = State()
    state.outbox = [Pending({"id": f"e{n}", "type": "t"}, ["command"]) for n in range(MAX_OUTBOX)]
    observe(state, Balance("prepaid", "euros", Decimal(5)), RULES, ["command"], {}, NOW)
    assert len(state.outbox) == MAX_OUTBOX and state.dropped == 2
    never = _Flaky("command", 10**9)
    state.outbox = state.outbox[:1]
    for _ in range(MAX_ATTEMPTS):
        deliver(state, [never], lambda s: None, lambda m: None)
    assert state.outbox == [] and state.dropped == 3
