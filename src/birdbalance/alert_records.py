"""The records of alerting that cross the storage seam: alert rules and recharges, the
events they raise, webhook subscriptions, and deliveries (:mod:`birdbalance.records`
re-exports them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from birdbalance.ledger import Mode


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A threshold on a ledger's available amount, and whether it is currently low."""

    id: str
    account_id: str
    mode: Mode
    below_minor: int
    hysteresis_minor: int
    low: bool
    created_at: str
    recharge: Recharge | None = None


@dataclass(frozen=True, slots=True)
class Recharge:
    """An alert rule's auto-recharge: ask for ``amount_minor``, or up to ``up_to_minor``."""

    amount_minor: int | None
    up_to_minor: int | None
    max_failures: int
    failures: int = 0
    disabled_at: str | None = None

    def __post_init__(self) -> None:
        assert (self.amount_minor is None) != (self.up_to_minor is None)
        assert 1 <= self.max_failures <= 100 and self.failures >= 0


@dataclass(frozen=True, slots=True)
class NewAlertRule:
    account_id: str
    mode: Mode
    below_minor: int
    hysteresis_minor: int
    recharge: Recharge | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One outbox event; ``payload`` is the exact JSON text every delivery sends."""

    id: str
    type: str
    account_id: str
    mode: Mode
    rule_id: str | None
    payload: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Webhook:
    """A subscription: where events go; ``events`` empty means every type."""

    id: str
    url: str
    account_id: str | None
    events: tuple[str, ...]
    created_at: str


@dataclass(frozen=True, slots=True)
class NewWebhook:
    url: str
    account_id: str | None
    events: tuple[str, ...]
    secret: str


#: What a delivery can be: waiting for an attempt, delivered, or dead-lettered.
DELIVERY_STATUSES: Final = ("pending", "delivered", "dead")


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    event_id: str
    webhook_id: str
    status: str
    attempts: int
    next_attempt_at: str
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery claimed for one attempt: what to send, where, signed with what."""

    id: str
    #: Attempts before this one (this one is number ``attempts + 1``).
    attempts: int
    webhook_id: str
    url: str
    secret: str
    payload: str
