"""The monitoring plugin's verdicts (pure), by the Nagios plugin convention."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from birdbalance.check import Status, check, judge
from birdbalance.client import Balance

W, C = Decimal("50"), Decimal("10")


@pytest.mark.parametrize(
    ("amount", "status", "text"),
    [
        ("50", Status.OK, "BALANCE OK - 50 euros | balance=50;50:;10:;0;"),
        (
            "49.99",
            Status.WARNING,
            "BALANCE WARNING - 49.99 euros (below 50) | balance=49.99;50:;10:;0;",
        ),
        ("10", Status.WARNING, "BALANCE WARNING - 10 euros (below 50) | balance=10;50:;10:;0;"),
        (
            "9.5",
            Status.CRITICAL,
            "BALANCE CRITICAL - 9.5 euros (below 10) | balance=9.5;50:;10:;0;",
        ),
        ("-3", Status.CRITICAL, "BALANCE CRITICAL - -3 euros (below 10) | balance=-3;50:;10:;0;"),
    ],
)
def test_thresholds_are_balances_to_stay_at_or_above(
    amount: str, status: Status, text: str
) -> None:
    result = judge(Balance("prepaid", "euros", Decimal(amount)), W, C)
    assert (result.status, result.line) == (status, text)
    assert int(result.status) == {"OK": 0, "WARNING": 1, "CRITICAL": 2}[status.name]


def test_a_postpaid_account_cannot_be_judged() -> None:
    result = judge(Balance("postpaid", "euros", Decimal(0)), W, C)
    assert result.status is Status.UNKNOWN and result.line.startswith("BALANCE UNKNOWN - postpaid")


def _answer(status: int, body: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=body))


def test_failures_are_unknown_and_never_show_the_key() -> None:
    key = "live_" + "k" * 25
    refused = check(
        key, W, C, base_url="http://x", transport=_answer(401, b'{"errors":[{"code":2}]}')
    )
    assert refused == refused.__class__(
        Status.UNKNOWN, "BALANCE UNKNOWN - the access key was refused"
    )
    garbled = check(key, W, C, base_url="http://x", transport=_answer(200, b"<html>"))
    assert garbled.status is Status.UNKNOWN and key not in garbled.line

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    unreachable = check(key, W, C, base_url="http://x", transport=httpx.MockTransport(down))
    assert unreachable.status is Status.UNKNOWN and key not in unreachable.line
    assert "\n" not in unreachable.line


@pytest.mark.parametrize(
    ("warning", "critical", "amount", "status", "why"),
    [
        ("~:1000", "@0:5", "1500", Status.WARNING, "(above 1000)"),
        ("~:1000", "@0:5", "5", Status.CRITICAL, "(inside @0:5)"),
        ("~:1000", "@0:5", "5.01", Status.OK, ""),
        ("10:20", "0:", "25", Status.WARNING, "(outside 10:20)"),
        ("10:20", "0:", "-1", Status.CRITICAL, "(below 0)"),
    ],
)
def test_ranges_as_the_monitoring_plugins_guidelines_define_them(
    warning: str, critical: str, amount: str, status: Status, why: str
) -> None:
    from birdbalance.thresholds import parse_range

    result = judge(
        Balance("prepaid", "euros", Decimal(amount)), parse_range(warning), parse_range(critical)
    )
    assert result.status is status, result.line
    assert f"{amount} euros {why}".strip() in result.line
    assert result.line.endswith(f"| balance={amount};{warning};{critical};0;")
