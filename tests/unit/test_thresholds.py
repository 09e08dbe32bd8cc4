"""Threshold ranges (pure): the guidelines' forms, and what is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from birdbalance.thresholds import RangeError, parse_range


@pytest.mark.parametrize(
    ("text", "alerting", "quiet"),
    [
        ("20:", ["19.99", "-5"], ["20", "1e3"]),
        ("~:10", ["10.01", "99"], ["10", "-1000"]),
        ("10:20", ["9", "21"], ["10", "15", "20"]),
        ("@10:20", ["10", "15", "20"], ["9.99", "20.01"]),
        ("@5", ["0", "5"], ["-0.01", "5.01"]),
        ("-5:-1", ["0", "-6"], ["-5", "-1"]),
        ("20", ["19"], ["20", "500"]),  # a bare number: "at least" (the documented deviation)
    ],
)
def test_what_each_range_alerts_on(text: str, alerting: list[str], quiet: list[str]) -> None:
    threshold = parse_range(text)
    assert all(threshold.alerts(Decimal(v)) for v in alerting), text
    assert not any(threshold.alerts(Decimal(v)) for v in quiet), text


@pytest.mark.parametrize("text", ["", "abc", "20:10", "@", ":", "1:2:3", "~", "10:~", "NaN",
                                  "1e5", "٣:", "x" * 65, "@~"])  # fmt: skip
def test_what_is_not_a_range(text: str) -> None:
    with pytest.raises(RangeError):
        parse_range(text)
