"""Shared sub-accounts: what one may spend of its parent's balance. Pure rules, no I/O.

A shared sub-account has no money of its own. Its charges and refunds are entries on its
parent's ledger, attributed to it, so the parent's floor (prepaid 0, or its credit limit)
bounds them like any other entry. Its own optional limit caps its *net usage* (charges
less refunds) per UTC day, UTC month or all time. The usage is counted per period key;
a refund gives back at most what its period used, so no counter goes below zero.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from birdbalance.errors import NotEnoughBalance
from birdbalance.ledger import EntryKind
from birdbalance.money import MAX_BALANCE_MINOR

#: The counter of all time (the other keys are ``D<day>`` and ``M<month>``).
ALL_TIME: Final = "all"


class SpendPeriod(enum.Enum):
    """The period a spending limit counts over (UTC)."""

    DAY = "day"
    MONTH = "month"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class SpendLimit:
    """At most ``amount_minor`` of net usage per ``period``."""

    amount_minor: int
    period: SpendPeriod

    def __post_init__(self) -> None:
        assert 0 < self.amount_minor <= MAX_BALANCE_MINOR


def stored_limit(amount_minor: int | None, period: str | None) -> SpendLimit | None:
    """A limit as stored: both columns set, or neither."""
    if amount_minor is None:
        return None
    assert period is not None
    return SpendLimit(int(amount_minor), SpendPeriod(period))


def period_keys(timestamp: str) -> tuple[str, str, str]:
    """The counters an entry at ``timestamp`` (RFC 3339, UTC) counts in: its day, its
    month, all time."""
    assert len(timestamp) >= 10 and timestamp[4] == "-" and timestamp[7] == "-", timestamp
    return "D" + timestamp[:10], "M" + timestamp[:7], ALL_TIME


def period_key(period: SpendPeriod, timestamp: str) -> str:
    """The one counter ``period`` reads at ``timestamp``."""
    day, month, all_time = period_keys(timestamp)
    return {SpendPeriod.DAY: day, SpendPeriod.MONTH: month, SpendPeriod.ALL: all_time}[period]


def period_end(period: SpendPeriod, timestamp: str) -> str:
    """When the period holding ``timestamp`` ends, in the stored timestamp form (the
    end of time for all time)."""
    year, month, day = int(timestamp[:4]), int(timestamp[5:7]), int(timestamp[8:10])
    if period is SpendPeriod.ALL:
        return "9999-12-31T23:59:59.999999Z"
    if period is SpendPeriod.DAY:
        end = datetime.date(year, month, day) + datetime.timedelta(days=1)
    else:
        end = datetime.date(year + month // 12, month % 12 + 1, 1)
    return end.isoformat() + "T00:00:00.000000Z"


def remaining(limit: SpendLimit | None, spent_minor: int) -> int | None:
    """What the limit leaves of its period (None: no limit)."""
    assert spent_minor >= 0
    if limit is None:
        return None
    return max(limit.amount_minor - spent_minor, 0)


def spendable(parent_available_minor: int, limit: SpendLimit | None, spent_minor: int) -> int:
    """What a shared sub-account may spend now: the smaller of what its parent has
    available (a postpaid parent's may be below zero, as its own ``GET /balance`` shows)
    and what its limit leaves."""
    left = remaining(limit, spent_minor)
    return parent_available_minor if left is None else min(parent_available_minor, left)


def spend(
    counters: Mapping[str, int],
    kind: EntryKind,
    amount_minor: int,
    timestamp: str,
    limit: SpendLimit | None,
) -> dict[str, int]:
    """The counters after an attributed entry of ``amount_minor`` (signed, as the ledger
    moved) at ``timestamp``; a charge past the limit is refused before anything changes.

    ``counters`` maps period keys to net usage (a missing key is 0).
    """
    assert kind in (EntryKind.CHARGE, EntryKind.REFUND), kind
    keys = period_keys(timestamp)
    after = dict(counters)
    if kind is EntryKind.CHARGE:
        assert amount_minor < 0
        used = -amount_minor
        if limit is not None:
            key = period_key(limit.period, timestamp)
            spent = counters.get(key, 0)
            if spent + used > limit.amount_minor:
                raise NotEnoughBalance(
                    f"this charge would pass the sub-account's spending limit of"
                    f" {limit.amount_minor} minor units per {limit.period.value}:"
                    f" {limit.amount_minor - min(spent, limit.amount_minor)} left",
                    "amount",
                )
        for key in keys:
            after[key] = counters.get(key, 0) + used
            if after[key] > MAX_BALANCE_MINOR:
                # The all-time counter only grows: bound it where a BIGINT still holds it.
                raise NotEnoughBalance(
                    f"the sub-account's usage would pass {MAX_BALANCE_MINOR} minor units",
                    "amount",
                )
    else:
        assert amount_minor > 0
        for key in keys:
            after[key] = max(counters.get(key, 0) - amount_minor, 0)
    return after
