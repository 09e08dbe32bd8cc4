"""The forecast's arithmetic: paces over the last 7 and 30 days, and the run-out day."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, strategies as st

from birdbalance.daily import Day
from birdbalance.forecast import MAX_HORIZON_DAYS, forecast
from birdbalance.ledger import EntryKind

TODAY = date(2026, 11, 28)


def _days(spent: list[tuple[int, int, int]]) -> list[Day]:
    """30 days ending today; ``spent`` gives (charges, refunds, transfers net) per day,
    oldest first, for the last days (the rest are quiet)."""
    quiet = [(0, 0, 0)] * (30 - len(spent))
    days = []
    for offset, (charges, refunds, transfers) in enumerate(quiet + spent):
        totals = dict.fromkeys(EntryKind, 0)
        totals[EntryKind.CHARGE] = -charges
        totals[EntryKind.REFUND] = refunds
        totals[EntryKind.TRANSFER] = transfers
        day = (TODAY - timedelta(days=29 - offset)).isoformat()
        days.append(Day(day, 0, totals, 0))
    return days


def test_a_steady_pace_runs_out_in_whole_days() -> None:
    week, month = forecast(100, _days([(10, 0, 0)] * 30), TODAY)
    assert (week.days, week.per_day_minor, week.runs_out_on) == (7, 10, TODAY + timedelta(10))
    assert (month.days, month.per_day_minor, month.runs_out_on) == (30, 10, TODAY + timedelta(10))


def test_refunds_and_transfers_in_and_out() -> None:
    # The last week: 14 charged, 4 refunded, 20 transferred out, 10 in (net -10): 20.
    days = _days([(14, 4, -20), (0, 0, 10)] + [(0, 0, 0)] * 5)
    week, month = forecast(60, days, TODAY)
    assert week.spent_minor == 10 + 20  # a day's net transfer: only what it sent out counts
    assert week.runs_out_on == TODAY + timedelta(60 * 7 // 30)
    assert month.spent_minor == 30 and month.runs_out_on == TODAY + timedelta(60)


def test_what_never_runs_out() -> None:
    quiet = _days([])
    assert [p.runs_out_on for p in forecast(100, quiet, TODAY)] == [None, None]
    topped_up = _days([(0, 5, 0)])  # refunds only: it grows
    assert [p.runs_out_on for p in forecast(100, topped_up, TODAY)] == [None, None]
    unlimited = _days([(10, 0, 0)] * 30)  # postpaid without a credit limit
    assert [p.runs_out_on for p in forecast(None, unlimited, TODAY)] == [None, None]
    tiny = _days([(1, 0, 0)])  # one unit a month against a huge balance
    assert forecast(10**15, tiny, TODAY)[1].runs_out_on is None
    empty = _days([(10, 0, 0)])
    assert [p.runs_out_on for p in forecast(0, empty, TODAY)] == [TODAY, TODAY]


@given(
    spendable=st.integers(min_value=1, max_value=10**18),
    spent=st.lists(st.integers(min_value=0, max_value=10**12), min_size=30, max_size=30),
)
def test_the_run_out_day_is_when_the_pace_uses_it_up(spendable: int, spent: list[int]) -> None:
    for pace in forecast(spendable, _days([(s, 0, 0) for s in spent]), TODAY):
        total = sum(spent[-pace.days :])
        assert pace.spent_minor == total
        if pace.runs_out_on is None:
            assert total == 0 or spendable * pace.days // total > MAX_HORIZON_DAYS
            continue
        lasted = (pace.runs_out_on - TODAY).days
        # After `lasted` days at this pace some is left; one more day would overspend.
        assert lasted * total <= spendable * pace.days < (lasted + 1) * total
