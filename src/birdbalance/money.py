"""Money as integers: assets, their fixed scale, parsing and rendering.

Every amount in birdbalance is an ``int`` of *minor units*. The scale is fixed per
asset and recorded on each account; it is :data:`SCALE` (6 decimal places, one
millionth of the major unit) for every asset, credits and currencies alike, so
sub-cent per-message prices such as ``0.0075`` are exact. The scale is part of the
stored data and can never change for an existing ledger.

Floats never appear here: decimal text is parsed with a strict grammar into an
integer, and rendered back from the integer with integer arithmetic.

This module does no I/O.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

from birdbalance.errors import AmountError, AssetError

#: Decimal places of every asset: one minor unit is 10**-6 of the major unit.
SCALE: Final = 6

#: Largest magnitude of a single entry: 10**9 major units.
MAX_ENTRY_MINOR: Final = 10**15

#: Largest magnitude of a balance: 10**12 major units, far inside int64.
MAX_BALANCE_MINOR: Final = 10**18

CREDITS: Final = "credits"

# MessageBird names three currencies in words; every other one by its ISO-4217 code.
_WORD_BY_CODE: Final = {"EUR": "euros", "GBP": "pounds", "USD": "dollars"}
_CODE_BY_WORD: Final = {word: code for code, word in _WORD_BY_CODE.items()}

#: Active ISO-4217 currency codes (funds and precious metals excluded).
ISO_4217_CODES: Final = frozenset(
    (
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    )
)

# Plain decimal notation only: no sign here, no exponent, no spaces, no leading "+".
#: Most digits before the decimal point of an amount's text.
MAX_WHOLE_DIGITS: Final = 18
_DECIMAL_RE: Final = re.compile(rf"(0|[1-9][0-9]{{0,{MAX_WHOLE_DIGITS - 1}}})(?:\.([0-9]+))?")
#: An amount as the API writes it (and as the OpenAPI document describes it).
AMOUNT_PATTERN: Final = rf"^-?(0|[1-9][0-9]{{0,{MAX_WHOLE_DIGITS - 1}}})(\.[0-9]{{1,{SCALE}}})?$"


def normalize_asset(text: str) -> str:
    """Return the stored asset for a user-given type.

    ``credits`` stays ``credits``; ``euros``/``pounds``/``dollars`` and any ISO-4217
    code (any case) become the upper-case code. Raises :class:`AssetError`.
    """
    lowered = text.strip().lower()
    if lowered == CREDITS:
        return CREDITS
    if lowered in _CODE_BY_WORD:
        return _CODE_BY_WORD[lowered]
    code = text.strip().upper()
    if code in ISO_4217_CODES:
        return code
    raise AssetError(
        f"unknown balance type {text!r}: use credits, euros, pounds, dollars or an ISO-4217 code"
    )


def balance_type(asset: str) -> str:
    """The ``type`` MessageBird shows for a stored asset (``EUR`` -> ``euros``)."""
    return _WORD_BY_CODE.get(asset, asset)


def scale_of(asset: str) -> int:
    """Decimal places of ``asset``'s minor unit (fixed: see the module docstring)."""
    assert asset == CREDITS or asset in ISO_4217_CODES, asset
    return SCALE


def parse_amount(text: str, *, scale: int = SCALE, allow_negative: bool = False) -> int:
    """Parse decimal text (``"9.2"``, ``"-0.0075"``) into minor units.

    Accepts plain decimal notation only, with at most ``scale`` decimals and a
    magnitude of at most :data:`MAX_ENTRY_MINOR`. Exponents, ``NaN``, infinities,
    spaces, a leading ``+`` and leading zeros are refused with :class:`AmountError`.
    """
    if not isinstance(text, str):
        raise AmountError('must be a decimal string such as "9.2"')
    negative = text.startswith("-")
    body = text[1:] if negative else text
    match = _DECIMAL_RE.fullmatch(body)
    if match is None:
        raise AmountError(f'{text[:40]!r} is not a plain decimal number such as "9.2"')
    if negative and not allow_negative:
        raise AmountError("must be positive")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > scale:
        raise AmountError(f"has more than {scale} decimal places")
    minor: int = int(whole) * 10**scale + int(fraction.ljust(scale, "0") or "0")
    if minor > MAX_ENTRY_MINOR:
        raise AmountError(f"exceeds the largest amount, {format_amount(MAX_ENTRY_MINOR, scale)}")
    if minor == 0 and negative:
        raise AmountError("negative zero is not an amount")
    return -minor if negative else minor


def format_amount(amount_minor: int, scale: int = SCALE) -> str:
    """Render minor units as the shortest exact decimal text (``9200000`` -> ``"9.2"``).

    The result is also a valid JSON number, which is how ``/balance`` renders it.
    """
    assert isinstance(amount_minor, int) and not isinstance(amount_minor, bool)
    whole, fraction = divmod(abs(amount_minor), 10**scale)
    sign = "-" if amount_minor < 0 else ""
    if fraction == 0:
        return f"{sign}{whole}"
    digits = str(fraction).rjust(scale, "0").rstrip("0")
    return f"{sign}{whole}.{digits}"


def decimal_text(value: Decimal) -> str:
    """A decimal as the shortest exact plain text (``Decimal("9.20")`` -> ``"9.2"``)."""
    assert value.is_finite()
    return "0" if value.is_zero() else format(value.normalize(), "f")
