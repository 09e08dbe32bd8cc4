"""When a balance crosses a line: the alert rules, free of I/O.

Storage engines call :func:`crossings` inside the write transaction that moves a
ledger's *available* amount (balance less pending holds), with the amount before and
after the write, and store each :class:`Crossing` as an event in the same transaction.

Each threshold rule has a state, ``low``. It fires ``balance.low`` once when the
available amount drops below its threshold, and cannot fire again until
``balance.recovered``. That fires once when the amount climbs above the threshold plus
the rule's hysteresis. A balance that hovers around a threshold therefore never produces
one event per charge. ``balance.depleted`` (prepaid, available reaches zero) and
``credit_limit.reached`` (postpaid, available reaches the negative limit) fire on each
write that arrives there from above.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from birdbalance.ledger import Payment


class EventType(StrEnum):
    LOW = "balance.low"
    RECOVERED = "balance.recovered"
    DEPLETED = "balance.depleted"
    CREDIT_LIMIT_REACHED = "credit_limit.reached"
    #: An alert rule with a recharge went low: the operator's payment system should top up.
    TOPUP_REQUESTED = "topup.requested"
    #: A rule's recharge failed ``max_failures`` times in a row and stopped asking.
    RECHARGE_DISABLED = "recharge.disabled"


@dataclass(frozen=True, slots=True)
class RuleState:
    """A threshold rule as a write finds it."""

    id: str
    below_minor: int
    hysteresis_minor: int
    low: bool


@dataclass(frozen=True, slots=True)
class Crossing:
    """One event a write causes; ``rule_id`` and ``threshold_minor`` for threshold rules."""

    type: EventType
    rule_id: str | None = None
    threshold_minor: int | None = None


def is_low(rule_below_minor: int, available_minor: int) -> bool:
    """The state a new rule starts in: already low if the amount is below its threshold."""
    return available_minor < rule_below_minor


def crossings(
    payment: Payment,
    credit_limit_minor: int | None,
    before_minor: int,
    after_minor: int,
    rules: Iterable[RuleState],
) -> list[Crossing]:
    """The events a move of the available amount from ``before`` to ``after`` causes."""
    found: list[Crossing] = []
    if before_minor == after_minor:
        return found
    for rule in rules:
        assert rule.hysteresis_minor >= 0
        if not rule.low and after_minor < rule.below_minor:
            found.append(Crossing(EventType.LOW, rule.id, rule.below_minor))
        elif rule.low and after_minor > rule.below_minor + rule.hysteresis_minor:
            found.append(Crossing(EventType.RECOVERED, rule.id, rule.below_minor))
    if payment is Payment.PREPAID and before_minor > 0 >= after_minor:
        found.append(Crossing(EventType.DEPLETED))
    if (
        payment is Payment.POSTPAID
        and credit_limit_minor is not None
        and before_minor > -credit_limit_minor >= after_minor
    ):
        found.append(Crossing(EventType.CREDIT_LIMIT_REACHED))
    return found
