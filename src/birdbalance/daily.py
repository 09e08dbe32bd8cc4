"""A ledger day by day, for charts: free of I/O.

The store keeps per-UTC-day totals by entry kind (``daily_totals``, written by a trigger
in each entry's transaction). :func:`fill_days` turns the rows of a range into one
:class:`Day` per calendar day, days without entries included, and checks as it goes
that each day's balance is the one before plus that day's entries: the chart is a
ledger too, and adds up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from birdbalance.ledger import EntryKind
from birdbalance.records import DailySeries

#: The longest range one chart covers (the dashboard offers 7, 30 and 90 days).
MAX_CHART_DAYS: Final = 366
CHART_DAYS: Final = (7, 30, 90)


@dataclass(frozen=True, slots=True)
class Day:
    """One UTC day: the balance at its end and its entries' totals by kind."""

    day: str
    balance_minor: int
    totals_minor: dict[EntryKind, int]
    entries: int

    @property
    def usage_minor(self) -> int:
        """What the day used: its charges less what was refunded of them (>= 0 is usual)."""
        return -(self.totals_minor[EntryKind.CHARGE] + self.totals_minor[EntryKind.REFUND])


def day_range(today: date, days: int) -> tuple[str, str]:
    """The ``days`` UTC days ending with ``today``, as ``(first, last)`` ISO dates."""
    assert 1 <= days <= MAX_CHART_DAYS
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()


def fill_days(series: DailySeries, first_day: str, last_day: str) -> list[Day]:
    """Every day of ``[first_day, last_day]``, in order, from the stored rows."""
    first, last = date.fromisoformat(first_day), date.fromisoformat(last_day)
    count = (last - first).days + 1
    assert 1 <= count <= MAX_CHART_DAYS, (first_day, last_day)
    by_day: dict[str, list[tuple[int, int, EntryKind, int, int]]] = {}
    for row in series.days:
        assert first_day <= row.day <= last_day, row.day
        by_day.setdefault(row.day, []).append(
            (row.last_seq, row.balance_after_minor, row.kind, row.amount_minor, row.entries)
        )
    balance = series.opening_minor
    filled = []
    for offset in range(count):
        day = (first + timedelta(days=offset)).isoformat()
        rows = sorted(by_day.get(day, []))
        totals = dict.fromkeys(EntryKind, 0)
        for _, _, kind, amount_minor, _ in rows:
            totals[kind] += amount_minor
        if rows:
            end_minor = rows[-1][1]  # after the day's last entry, whatever its kind
            assert balance + sum(totals.values()) == end_minor, f"day {day} does not add up"
            balance = end_minor
        filled.append(Day(day, balance, totals, sum(r[4] for r in rows)))
    return filled
