"""The rules of shared sub-accounts' spending (pure: no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from birdbalance.errors import NotEnoughBalance
from birdbalance.ledger import EntryKind
from birdbalance.spending import (
    SpendLimit,
    SpendPeriod,
    period_end,
    period_key,
    period_keys,
    spend,
    spendable,
)

NOV_30 = "2026-11-30T23:59:59.999999Z"


def test_period_keys_and_ends() -> None:
    assert period_keys(NOV_30) == ("D2026-11-30", "M2026-11", "all")
    assert period_key(SpendPeriod.MONTH, NOV_30) == "M2026-11"
    assert period_end(SpendPeriod.DAY, NOV_30) == "2026-12-01T00:00:00.000000Z"
    assert period_end(SpendPeriod.MONTH, "2026-12-05T10:00:00.000000Z") == (
        "2027-01-01T00:00:00.000000Z"
    )
    assert period_end(SpendPeriod.DAY, "2028-02-28T01:00:00.000000Z")[:10] == "2028-02-29"
    assert period_end(SpendPeriod.ALL, NOV_30) > "9999"


def test_a_charge_past_the_limit_is_refused_and_changes_nothing() -> None:
    limit = SpendLimit(10, SpendPeriod.DAY)
    counters = spend({}, EntryKind.CHARGE, -7, NOV_30, limit)
    assert counters == {"D2026-11-30": 7, "M2026-11": 7, "all": 7}
    with pytest.raises(NotEnoughBalance, match="3 left"):
        spend(counters, EntryKind.CHARGE, -4, NOV_30, limit)
    # The next day is a new period: the month and all-time counters go on.
    next_day = spend(counters, EntryKind.CHARGE, -10, "2026-12-01T00:00:00.000000Z", limit)
    assert next_day["D2026-12-01"] == 10 and next_day["all"] == 17


def test_a_refund_gives_back_at_most_what_its_period_used() -> None:
    counters = {"D2026-11-30": 2, "M2026-11": 9, "all": 30}
    after = spend(counters, EntryKind.REFUND, 5, NOV_30, None)
    assert after == {"D2026-11-30": 0, "M2026-11": 4, "all": 25}


def test_spendable_is_the_smaller_of_the_parent_and_the_limit() -> None:
    limit = SpendLimit(10, SpendPeriod.MONTH)
    assert spendable(50, limit, 4) == 6
    assert spendable(3, limit, 4) == 3
    assert spendable(50, None, 4) == 50
    assert spendable(-20, limit, 0) == -20  # a postpaid parent in debt shows its debt


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(min_value=1, max_value=50), st.integers(0, 3)),
        max_size=60,
    ),
    st.integers(min_value=1, max_value=200),
    st.sampled_from(list(SpendPeriod)),
)
def test_no_sequence_passes_the_limit_or_goes_below_zero(
    steps: list[tuple[bool, int, int]], limit_minor: int, period: SpendPeriod
) -> None:
    limit = SpendLimit(limit_minor, period)
    counters: dict[str, int] = {}
    for is_charge, amount, day in steps:
        at = f"2026-11-{28 + day:02d}T12:00:00.000000Z" if day < 3 else "2026-12-01T00:00:00Z"
        try:
            if is_charge:
                counters = spend(counters, EntryKind.CHARGE, -amount, at, limit)
            else:
                counters = spend(counters, EntryKind.REFUND, amount, at, limit)
        except NotEnoughBalance:
            continue
        assert all(v >= 0 for v in counters.values())
        assert counters.get(period_key(period, at), 0) <= limit_minor
