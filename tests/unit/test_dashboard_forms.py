"""What the dashboard's forms and pages turn text into."""

from __future__ import annotations

import pytest

from birdbalance.errors import DateError
from birdbalance.http.dashboard_format import day_after, day_start, grouped


def test_dates_of_the_forms() -> None:
    assert day_start("2026-11-22", "from") == "2026-11-22T00:00:00Z"
    assert day_after("2026-12-31", "to") == "2027-01-01T00:00:00Z"
    for bad in ("", "22/11/2026", "2026-13-01", "yesterday"):
        with pytest.raises(DateError):
            day_start(bad, "from")
    with pytest.raises(DateError):
        day_after("9999-12-31", "to")


def test_grouped_amounts_keep_every_digit() -> None:
    assert grouped("1234567.000001") == "1,234,567.000001"
    assert grouped("-1000") == "-1,000"
    assert grouped("0.5") == "0.5"
