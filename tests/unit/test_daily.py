"""Charts day by day: every day present, and every day adds up."""

from __future__ import annotations

from datetime import date

import pytest

from birdbalance.daily import MAX_CHART_DAYS, day_range, fill_days
from birdbalance.ledger import EntryKind, Payment
from birdbalance.records import Account, DailySeries, DayTotal, LedgerTotals

ACCOUNT = Account(
    "acc_01JD3Z8Q6W6B7Y2M0N4R5T8V9X",
    None,
    Payment.PREPAID,
    "EUR",
    2,
    None,
    {},
    "2026-01-01T00:00:00.000000Z",
    LedgerTotals(0, 0),
    LedgerTotals(0, 0),
)


def test_day_range_ends_today() -> None:
    assert day_range(date(2026, 3, 1), 7) == ("2026-02-23", "2026-03-01")
    assert day_range(date(2026, 3, 1), 1) == ("2026-03-01", "2026-03-01")
    with pytest.raises(AssertionError):
        day_range(date(2026, 3, 1), MAX_CHART_DAYS + 1)


def test_days_without_entries_carry_the_balance() -> None:
    series = DailySeries(
        ACCOUNT,
        500,
        [
            DayTotal("2026-03-02", EntryKind.CHARGE, -120, 3, 10, 480),
            DayTotal("2026-03-02", EntryKind.REFUND, 20, 1, 11, 500),
            DayTotal("2026-03-02", EntryKind.TOPUP, 100, 1, 9, 600),
            DayTotal("2026-03-04", EntryKind.ADJUSTMENT, -1, 1, 12, 499),
        ],
    )
    days = fill_days(series, "2026-03-01", "2026-03-05")
    assert [d.day for d in days] == [f"2026-03-0{n}" for n in range(1, 6)]
    assert [d.balance_minor for d in days] == [500, 500, 500, 499, 499]
    assert [d.usage_minor for d in days] == [0, 100, 0, 0, 0]
    assert [d.entries for d in days] == [0, 5, 0, 1, 0]
    assert days[1].totals_minor[EntryKind.TOPUP] == 100


def test_a_day_that_does_not_add_up_is_refused() -> None:
    broken = DailySeries(ACCOUNT, 0, [DayTotal("2026-03-01", EntryKind.TOPUP, 10, 1, 1, 11)])
    with pytest.raises(AssertionError, match="does not add up"):
        fill_days(broken, "2026-03-01", "2026-03-01")
