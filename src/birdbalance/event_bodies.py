"""What an event says, and who gets it: the rules the storage layer applies when a move
raises events. Pure: no I/O, no SQL.

- :func:`event_body`: the JSON body of an event, fixed when it is written (the webhook
  payload, signed as is);
- :func:`subscribed`: whether a subscription's event filter takes an event type;
- :func:`recharge_amount_minor`: how much an auto-recharge asks for.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from birdbalance.alerts import Crossing
from birdbalance.ledger import Mode, Payment
from birdbalance.money import balance_type, format_amount
from birdbalance.records import Recharge


class EventLedger(Protocol):
    """The facts of a ledger an event describes."""

    @property
    def account_id(self) -> str: ...
    @property
    def mode(self) -> Mode: ...
    @property
    def payment(self) -> Payment: ...
    @property
    def asset(self) -> str: ...
    @property
    def scale(self) -> int: ...
    @property
    def credit_limit_minor(self) -> int | None: ...


def event_body(
    event_id: str,
    crossing: Crossing,
    ledger: EventLedger,
    balance_minor: int,
    held_minor: int,
    now: str,
    cause: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> str:
    """The JSON body of an event: the ledger's balance, pending and available amounts
    after the move, the rule's threshold, the credit limit, and what caused it."""
    scale = ledger.scale
    data: dict[str, Any] = {
        "account_id": ledger.account_id,
        "mode": ledger.mode.value,
        "payment": ledger.payment.value,
        "type": balance_type(ledger.asset),
        "available": format_amount(balance_minor - held_minor, scale),
        "balance": format_amount(balance_minor, scale),
        "pending": format_amount(held_minor, scale),
        "cause": cause,
    }
    if crossing.rule_id is not None:
        assert crossing.threshold_minor is not None
        data["alert_id"] = crossing.rule_id
        data["threshold"] = format_amount(crossing.threshold_minor, scale)
    if ledger.credit_limit_minor is not None:
        data["credit_limit"] = format_amount(ledger.credit_limit_minor, scale)
    data.update(extra or {})
    body = {"id": event_id, "type": crossing.type.value, "created_at": now, "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def subscribed(event_filter: str, event_type: str) -> bool:
    """Whether a subscription whose filter is ``event_filter`` (comma-separated types;
    empty: every type) takes ``event_type``."""
    return not event_filter or event_type in event_filter.split(",")


def recharge_amount_minor(recharge: Recharge, available_minor: int) -> int | None:
    """What an auto-recharge asks for when its rule goes low: its fixed amount, or what
    brings ``available_minor`` up to its target; ``None`` when already there."""
    if recharge.amount_minor is not None:
        return recharge.amount_minor
    assert recharge.up_to_minor is not None
    amount = recharge.up_to_minor - available_minor
    return amount if amount > 0 else None
