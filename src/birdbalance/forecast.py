"""When a balance runs out at its recent pace: free of I/O.

The pace over the last ``n`` UTC days (today included) is what the ledger spent on
them: its usage (charges less refunds) plus what transfers moved out beyond what they
brought in, day by day, divided by ``n``. At that pace the spendable amount (the available
balance, and a postpaid account's credit limit) lasts ``spendable * n // spent`` more
whole days: it runs out that many days after today (today, if nothing is left). A pace
that spends nothing, or a postpaid account without a limit, never runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from birdbalance.daily import Day
from birdbalance.ledger import EntryKind

#: The paces the API and the dashboard give: the last week's and the last month's.
PACE_DAYS: Final = (7, 30)
#: Past this many days a forecast is "not in sight" (and dates stay far from year 9999).
MAX_HORIZON_DAYS: Final = 36_500


@dataclass(frozen=True, slots=True)
class Pace:
    """The pace over the last ``days`` days, and the day it uses the balance up."""

    days: int
    spent_minor: int
    #: None: at this pace the balance never runs out (or not within the horizon).
    runs_out_on: date | None

    @property
    def per_day_minor(self) -> int:
        """What a day spent on average, rounded down to the minor unit."""
        return max(self.spent_minor, 0) // self.days


def spent_minor(day: Day) -> int:
    """What a day took from the balance: usage, and transfers out beyond those in."""
    return day.usage_minor + max(-day.totals_minor[EntryKind.TRANSFER], 0)


def forecast(spendable_minor: int | None, days: list[Day], today: date) -> list[Pace]:
    """A :class:`Pace` for each of :data:`PACE_DAYS`, from ``days`` (ending ``today``,
    at least the longest pace's count). ``spendable_minor`` None: no floor (postpaid
    without a credit limit)."""
    assert days and len(days) >= max(PACE_DAYS), len(days)
    assert days[-1].day == today.isoformat(), (days[-1].day, today)
    paces = []
    for count in PACE_DAYS:
        spent = sum(spent_minor(day) for day in days[-count:])
        paces.append(Pace(count, spent, _runs_out_on(spendable_minor, spent, count, today)))
    return paces


def _runs_out_on(spendable_minor: int | None, spent: int, count: int, today: date) -> date | None:
    if spendable_minor is None or spent <= 0:
        return None
    if spendable_minor <= 0:
        return today  # nothing left to spend
    lasts_days = spendable_minor * count // spent
    if lasts_days > MAX_HORIZON_DAYS:
        return None
    return today + timedelta(days=lasts_days)
