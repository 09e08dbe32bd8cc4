"""From readings to events: the watcher's rules, applied to each balance it reads.

Pure: no I/O. The same crossing rules as the server (:func:`birdbalance.alerts.crossings`)
turn the move from the last reading to this one into ``balance.low``,
``balance.recovered`` and ``balance.depleted`` events.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from birdbalance.alerts import Crossing, EventType, RuleState, crossings, is_low
from birdbalance.client import Balance
from birdbalance.errors import WatchError
from birdbalance.ledger import Payment
from birdbalance.money import decimal_text
from birdbalance.watch.amounts import SCALE, to_minor
from birdbalance.watch.state import MAX_OUTBOX, Pending, State

MAX_RULES: Final = 20
#: Characters of the asset name kept in an event (the client already caps server text).
MAX_TYPE_CHARS: Final = 100
PAYMENTS: Final = frozenset(p.value for p in Payment)


@dataclass(frozen=True, slots=True)
class Rule:
    """Alert below ``below``; recover above ``below + hysteresis`` (asset units)."""

    below: Decimal
    hysteresis: Decimal = Decimal(0)

    @property
    def id(self) -> str:
        return f"below:{decimal_text(self.below)}"


def reading_problem(balance: Balance) -> str | None:
    """Why this reading cannot be judged (then it is logged and skipped), or ``None``."""
    if balance.payment not in PAYMENTS:
        return f"payment {balance.payment[:20]!r} is neither prepaid nor postpaid"
    if not isinstance(balance.type, str) or not balance.type:
        return "the asset type is missing"
    if len(balance.type) > MAX_TYPE_CHARS:
        return f"the asset type is longer than {MAX_TYPE_CHARS} characters"
    try:
        to_minor(balance.amount)
    except WatchError as exc:
        return str(exc)
    return None


def _event(
    crossing: Crossing, balance: Balance, source: dict[str, str], now: datetime
) -> dict[str, Any]:
    data: dict[str, Any] = {
        **source,
        "payment": balance.payment,
        "type": balance.type,
        "available": decimal_text(balance.amount),
    }
    if crossing.threshold_minor is not None:
        data["threshold"] = decimal_text(Decimal(crossing.threshold_minor).scaleb(-SCALE))
    moment = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # A random id: unique across watchers and restarts, so receivers can dedup by it.
    return {
        "id": "evt_w" + secrets.token_hex(12),
        "type": crossing.type.value,
        "created_at": moment,
        "data": data,
    }


def observe(
    state: State,
    balance: Balance,
    rules: Sequence[Rule],
    channels: Sequence[str],
    source: dict[str, str],
    now: datetime,
) -> list[dict[str, Any]]:
    """Apply one reading to ``state`` (in place); the events it raises, also queued.

    The first reading counts as a move from "unknown": a rule whose threshold the balance
    is already below fires ``balance.low`` once, as the operator would want to hear.
    A postpaid balance (MessageBird reports its amount as 0) raises nothing. A reading
    :func:`reading_problem` refuses raises :class:`WatchError` and changes nothing.
    """
    problem = reading_problem(balance)
    if problem is not None:
        raise WatchError(f"skipped a reading: {problem}")
    if balance.payment != Payment.PREPAID.value:
        state.amount = decimal_text(balance.amount)
        return []
    after = to_minor(balance.amount)
    before = None if state.amount is None else to_minor(Decimal(state.amount))
    states = [
        RuleState(
            rule.id,
            to_minor(rule.below),
            to_minor(rule.hysteresis),
            state.low.get(rule.id, False),
        )
        for rule in rules
    ]
    if before is None:
        # Nothing known: above every line, so a balance already below one raises it;
        # depletion counts only from a known positive amount.
        raised = [
            Crossing(EventType.LOW, s.id, s.below_minor)
            for s in states
            if is_low(s.below_minor, after) and not s.low
        ]
    else:
        raised = crossings(Payment.PREPAID, None, before, after, states)
    for crossing in raised:
        if crossing.rule_id is not None:
            state.low[crossing.rule_id] = crossing.type is EventType.LOW
    state.amount = decimal_text(balance.amount)
    events = [_event(c, balance, source, now) for c in raised]
    if channels:
        state.outbox += [Pending(event, list(channels)) for event in events]
        if len(state.outbox) > MAX_OUTBOX:
            state.dropped += len(state.outbox) - MAX_OUTBOX
            del state.outbox[: len(state.outbox) - MAX_OUTBOX]
    return events
