"""The gauges ``GET /metrics`` reads from the database at scrape time.

The outbox's depth and age (an alert on ``birdbalance_webhook_outbox_oldest_age_seconds``
catches a stuck receiver long before anyone notices missing events) and, if
``BIRDBALANCE_METRICS_LEDGER_GAUGES`` is set, balances of the first N ledgers. Run it
in a thread: it does database I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from birdbalance import __version__
from birdbalance.metrics import CONTENT_TYPE, Gauge
from birdbalance.records import Account
from birdbalance.storage import Store

METRICS_CONTENT_TYPE: Final = CONTENT_TYPE.decode("ascii")


def database_gauge(*, ok: bool) -> Gauge:
    return Gauge(
        "birdbalance_database_up",
        "1 if this scrape could read the database, else 0.",
        (),
        [((), 1.0 if ok else 0.0)],
    )


def write_queue_gauge(depth: int) -> Gauge:
    return Gauge(
        "birdbalance_write_queue_depth",
        "Writes waiting for a writer in this process (bounded; 503 beyond the bound).",
        (),
        [((), float(depth))],
    )


def _age_s(timestamp: str | None, now: datetime) -> float:
    if timestamp is None:
        return 0.0
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return max(0.0, (now - moment).total_seconds())


def scrape_gauges(store: Store, ledger_gauges: int) -> list[Gauge]:
    """Everything read from the database for one scrape."""
    outbox = store.outbox_stats()
    now = datetime.now(UTC)
    gauges = [
        database_gauge(ok=True),
        Gauge(
            "birdbalance_info",
            "The running version and database engine (always 1).",
            ("version", "engine"),
            [((__version__, store.engine), 1.0)],
        ),
        Gauge(
            "birdbalance_webhook_outbox_pending",
            "Webhook deliveries written and not yet delivered or dead-lettered.",
            (),
            [((), float(outbox.pending))],
        ),
        Gauge(
            "birdbalance_webhook_outbox_oldest_age_seconds",
            "Age of the oldest pending delivery (0 when none is pending).",
            (),
            [((), _age_s(outbox.oldest_pending_at, now))],
        ),
    ]
    if ledger_gauges:
        ledgers = store.ledger_balances(ledger_gauges)
        # Floats only here, for the exposition: the ledger itself is integers.
        balance = [
            ((x.account_id, x.mode.value, x.asset), x.balance_minor / 10**x.scale) for x in ledgers
        ]
        available = [
            ((x.account_id, x.mode.value, x.asset), (x.balance_minor - x.held_minor) / 10**x.scale)
            for x in ledgers
        ]
        gauges += [
            Gauge(
                "birdbalance_ledger_balance",
                "A ledger's balance in its asset's units (the first N ledgers by account).",
                ("account", "mode", "asset"),
                balance,
            ),
            Gauge(
                "birdbalance_ledger_available",
                "What GET /balance shows: the balance less what holds reserve.",
                ("account", "mode", "asset"),
                available,
            ),
        ]
        gauges += _shared_gauges(store.shared_balances(ledger_gauges))
    return gauges


def _shared_gauges(accounts: list[Account]) -> list[Gauge]:
    """A shared sub-account has no ledger of its own: what its keys may spend, and its
    usage in its limit's period, labelled with the parent whose balance it spends."""
    available, spent = [], []
    for account in accounts:
        assert account.shared is not None and account.funding_id is not None
        for mode, spend in account.shared.items():
            labels = (account.id, mode.value, account.asset, account.funding_id)
            available.append((labels, spend.available_minor / 10**account.scale))
            spent.append((labels, spend.spent_minor / 10**account.scale))
    names = ("account", "mode", "asset", "parent")
    return [
        Gauge(
            "birdbalance_shared_available",
            "What a shared sub-account's GET /balance shows: the smaller of its parent's"
            " available amount and what its spending limit leaves.",
            names,
            available,
        ),
        Gauge(
            "birdbalance_shared_spent",
            "A shared sub-account's net usage in its spending limit's current period"
            " (all time without a limit).",
            names,
            spent,
        ),
    ]
