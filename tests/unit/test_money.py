from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from birdbalance.money import (
    MAX_ENTRY_MINOR,
    AmountError,
    AssetError,
    balance_type,
    format_amount,
    normalize_asset,
    parse_amount,
)


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("0", 0),
        ("9.2", 9_200_000),
        ("103", 103_000_000),
        ("10.1", 10_100_000),
        ("0.0075", 7_500),
        ("0.000001", 1),
        ("1000000000", MAX_ENTRY_MINOR),
    ],
)
def test_parse_amount(text: str, minor: int) -> None:
    assert parse_amount(text) == minor


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 1",
        "1 ",
        "+1",
        "1e3",
        "1E3",
        "NaN",
        "nan",
        "Infinity",
        "-inf",
        "0x10",
        "1.",
        ".5",
        "01",
        "1.0000001",
        "1,5",
        "1_000",
        "\u0661",
        "1000000000.000001",
        "9" * 40,
    ],
)
def test_parse_amount_refuses(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text)


def test_negative_only_when_allowed() -> None:
    with pytest.raises(AmountError, match="positive"):
        parse_amount("-1")
    assert parse_amount("-1.5", allow_negative=True) == -1_500_000
    with pytest.raises(AmountError):
        parse_amount("-0", allow_negative=True)


@pytest.mark.parametrize(
    ("minor", "text"),
    [(0, "0"), (9_200_000, "9.2"), (103_000_000, "103"), (1, "0.000001"), (-7_500, "-0.0075")],
)
def test_format_amount(minor: int, text: str) -> None:
    assert format_amount(minor) == text


@given(st.integers(min_value=-MAX_ENTRY_MINOR, max_value=MAX_ENTRY_MINOR).filter(bool))
def test_format_then_parse_is_identity(minor: int) -> None:
    assert parse_amount(format_amount(minor), allow_negative=True) == minor


@given(st.integers(min_value=1, max_value=MAX_ENTRY_MINOR))
def test_rendered_amount_is_the_exact_decimal(minor: int) -> None:
    from decimal import Decimal

    assert Decimal(format_amount(minor)) == Decimal(minor) / Decimal(10**6)


@pytest.mark.parametrize(
    ("given", "asset", "shown"),
    [
        ("credits", "credits", "credits"),
        ("euros", "EUR", "euros"),
        ("EUR", "EUR", "euros"),
        ("pounds", "GBP", "pounds"),
        ("usd", "USD", "dollars"),
        ("JPY", "JPY", "JPY"),
        ("chf", "CHF", "CHF"),
    ],
)
def test_assets(given: str, asset: str, shown: str) -> None:
    assert normalize_asset(given) == asset
    assert balance_type(asset) == shown


@pytest.mark.parametrize("text", ["", "bitcoin", "XYZ", "EURO", "eur0"])
def test_unknown_assets(text: str) -> None:
    with pytest.raises(AssetError):
        normalize_asset(text)
