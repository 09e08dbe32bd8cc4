"""The process clock: follows the system clock, ignores a step until it has lasted."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest.mock import patch

from hypothesis import given, strategies as st

from birdbalance import timestamps
from birdbalance.timestamps import (
    MAX_REFERENCE_SKEW_S,
    MAX_SLEW_S,
    REFERENCE_EVERY_S,
    STEP_CONFIRM_S,
    SteadyClock,
)


class _Clocks:
    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 100.0

    def tick(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def test_slow_corrections_pass_and_a_momentary_step_is_ignored() -> None:
    clocks = _Clocks()
    clock = SteadyClock(lambda: clocks.wall, lambda: clocks.mono)
    clocks.tick(10)
    assert clock.now_s() == clocks.wall
    clocks.wall += MAX_SLEW_S / 2  # NTP slews: followed at once
    assert clock.now_s() == clocks.wall
    real = clocks.wall
    clocks.wall += 86_400  # a day ahead, for a moment
    for _ in range(5):
        clocks.tick(1)
        real += 1
        assert clock.now_s() == real
    clocks.wall -= 86_400  # back
    clocks.tick(1)
    assert clock.now_s() == clocks.wall == real + 1


def test_a_step_that_lasts_is_believed_and_a_step_back_too() -> None:
    clocks = _Clocks()
    clock = SteadyClock(lambda: clocks.wall, lambda: clocks.mono)
    clocks.wall += 3600  # the clock was an hour behind, and is set right
    before = clock.now_s()
    assert before == clocks.wall - 3600
    clocks.tick(STEP_CONFIRM_S)
    assert clock.now_s() == clocks.wall  # adopted after it lasted
    clocks.wall -= 7200
    clocks.tick(1)
    assert clock.now_s() == clocks.wall + 7200  # a step back waits as well


def test_stamps_keep_within_the_bound_of_the_reference_clock() -> None:
    clocks = _Clocks()
    clocks.wall += 86_400  # wrong by a day from the start: nothing to tell it from right
    clock = SteadyClock(lambda: clocks.wall, lambda: clocks.mono)
    assert clock.now_s() == clocks.wall
    real = clocks.wall - 86_400
    skew_s = clock.follow(real, clocks.mono)  # the database's clock says otherwise
    assert skew_s == 86_400
    for _ in range(3):
        clocks.tick(REFERENCE_EVERY_S)
        real += REFERENCE_EVERY_S
        assert clock.now_s() == real + MAX_REFERENCE_SKEW_S  # never further ahead
    clocks.wall = real - 3600  # now an hour behind, and for good: still within the bound
    clock.now_s()
    clocks.tick(STEP_CONFIRM_S + 1)
    real += STEP_CONFIRM_S + 1
    assert clock.now_s() == real - MAX_REFERENCE_SKEW_S
    clocks.wall = real + 0.5  # set right: its own time again, within the bound
    clock.now_s()
    clocks.tick(STEP_CONFIRM_S + 1)
    real += STEP_CONFIRM_S + 1
    assert clock.now_s() == clocks.wall == real + 0.5


@given(st.floats(min_value=0, max_value=2**33, allow_nan=False, allow_infinity=False))
def test_the_fast_stamp_is_the_datetime_stamp(seconds: float) -> None:
    """``now_text`` (cached per second) writes exactly what ``datetime`` would."""
    clock = SteadyClock(lambda: seconds, lambda: 0.0)
    with patch.object(timestamps, "_CLOCK", clock):
        assert timestamps.now_text() == timestamps.format_timestamp(
            datetime.fromtimestamp(seconds, UTC)
        )
