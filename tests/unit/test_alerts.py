"""The alert rules: one event per crossing, never one per charge."""

from __future__ import annotations

import itertools

from hypothesis import given, strategies as st

from birdbalance.alerts import Crossing, EventType, RuleState, crossings
from birdbalance.ledger import Payment


def _walk(amounts: list[int], below: int, hysteresis: int) -> list[EventType]:
    """Move a prepaid ledger through ``amounts``; return the threshold events in order."""
    low = amounts[0] < below
    events = []
    for before, after in itertools.pairwise(amounts):
        rule = RuleState("alr_1", below, hysteresis, low)
        for crossing in crossings(Payment.PREPAID, None, before, after, [rule]):
            if crossing.rule_id is not None:
                events.append(crossing.type)
                low = crossing.type is EventType.LOW
    return events


def test_low_fires_once_and_recovered_needs_the_hysteresis() -> None:
    # 10 -> 4 (low) -> 6 -> 3 -> 7 -> 9 (still within 5 + 5) -> 11 (recovered) -> 2 (low)
    assert _walk([10, 4, 6, 3, 7, 9, 10, 11, 2], below=5, hysteresis=5) == [
        EventType.LOW,
        EventType.RECOVERED,
        EventType.LOW,
    ]


def test_a_rule_created_below_its_threshold_fires_recovered_first() -> None:
    assert _walk([3, 2, 6], below=5, hysteresis=0) == [EventType.RECOVERED]


def test_depleted_and_credit_limit_fire_when_reached_from_above() -> None:
    assert crossings(Payment.PREPAID, None, 5, 0, []) == [Crossing(EventType.DEPLETED)]
    assert crossings(Payment.PREPAID, None, 0, 0, []) == []
    assert crossings(Payment.PREPAID, None, 0, 5, []) == []
    assert crossings(Payment.POSTPAID, 10, -5, -10, []) == [
        Crossing(EventType.CREDIT_LIMIT_REACHED)
    ]
    assert crossings(Payment.POSTPAID, None, -5, -10, []) == []
    assert crossings(Payment.POSTPAID, 10, -10, -9, []) == []


@given(
    st.lists(st.integers(min_value=0, max_value=100), min_size=2, max_size=60),
    st.integers(min_value=1, max_value=100),
    st.integers(min_value=0, max_value=30),
)
def test_events_alternate_and_match_the_walk(amounts: list[int], below: int, hyst: int) -> None:
    events = _walk(amounts, below, hyst)
    # Never two lows (or two recoveries) in a row, whatever the path.
    assert all(a != b for a, b in itertools.pairwise(events))
    lows = events.count(EventType.LOW)
    # Each low is a descent below the threshold from a recovered (or fresh) state.
    descents, armed = 0, amounts[0] >= below
    for amount in amounts[1:]:
        if armed and amount < below:
            descents, armed = descents + 1, False
        elif not armed and amount > below + hyst:
            armed = True
    assert lows == descents
