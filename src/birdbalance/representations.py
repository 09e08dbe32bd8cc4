"""The JSON shapes of the admin API (and of the CLI's ``--json``), in one place.

Amounts are rendered as exact decimal strings; ``type`` is MessageBird's balance type.
"""

from __future__ import annotations

import json
from typing import Any

from birdbalance.daily import Day
from birdbalance.ids import utc_timestamp
from birdbalance.money import balance_type, format_amount
from birdbalance.records import (
    Account,
    AdminToken,
    AlertRule,
    ApiKey,
    AuditRecord,
    Delivery,
    Entry,
    Event,
    Hold,
    HoldResult,
    LedgerTotals,
    Page,
    PostedEntry,
    Recharge,
    Webhook,
)


def _ledger(totals: LedgerTotals, scale: int) -> dict[str, Any]:
    """``amount`` is the ledger's balance; ``pending`` what holds reserve of it;
    ``available`` the rest, which is what ``GET /balance`` shows for a prepaid account."""
    return {
        "amount": format_amount(totals.balance_minor, scale),
        "pending": format_amount(totals.held_minor, scale),
        "available": format_amount(totals.balance_minor - totals.held_minor, scale),
        "entries": totals.entry_count,
    }


def account_json(account: Account) -> dict[str, Any]:
    limit = account.credit_limit_minor
    return {
        "id": account.id,
        "name": account.name,
        "payment": account.payment.value,
        "type": balance_type(account.asset),
        "scale": account.scale,
        "credit_limit": None if limit is None else format_amount(limit, account.scale),
        "metadata": account.metadata,
        "created_at": account.created_at,
        "balances": {
            "live": _ledger(account.live, account.scale),
            "test": _ledger(account.test, account.scale),
        },
    }


def key_status(key: ApiKey, now: str) -> str:
    """``live``, ``expiring`` (rotated, still live until ``expires_at``), ``expired`` or
    ``revoked``."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is None:
        return "live"
    return "expiring" if key.expires_at > now else "expired"


def key_json(key: ApiKey, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": key.id,
        "account_id": key.account_id,
        "mode": key.mode.value,
        "hint": key.hint,
        "status": key_status(key, utc_timestamp()),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
    }
    if secret is not None:
        body["key"] = secret
    return body


def token_json(token: AdminToken, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": token.id,
        "name": token.name,
        "scope": token.scope.value,
        "hint": token.hint,
        "created_at": token.created_at,
        "revoked_at": token.revoked_at,
    }
    if secret is not None:
        body["token"] = secret
    return body


def audit_json(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": record.at,
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "address": record.address,
        "status": record.status,
        "detail": record.detail,
    }


def entry_json(entry: Entry, scale: int) -> dict[str, Any]:
    return {
        "id": entry.id,
        "account_id": entry.account_id,
        "mode": entry.mode.value,
        "seq": entry.seq,
        "kind": entry.kind.value,
        "amount": format_amount(entry.amount_minor, scale),
        "balance_after": format_amount(entry.balance_after_minor, scale),
        "refund_of": entry.refund_of,
        "reference": entry.reference,
        "metadata": entry.metadata,
        "created_at": entry.created_at,
        "hold": entry.hold_id,
    }


def day_json(day: Day, scale: int) -> dict[str, Any]:
    """One chart day: closing balance, usage (charges less refunds) and totals by kind."""
    return {
        "day": day.day,
        "balance": format_amount(day.balance_minor, scale),
        "usage": format_amount(day.usage_minor, scale),
        "totals": {k.value: format_amount(v, scale) for k, v in day.totals_minor.items()},
        "entries": day.entries,
    }


def posted_json(posted: PostedEntry) -> dict[str, Any]:
    entry = posted.entry
    return {
        "entry": entry_json(entry, posted.scale),
        "balance": {
            "mode": entry.mode.value,
            "payment": posted.payment.value,
            "type": balance_type(posted.asset),
            "amount": format_amount(entry.balance_after_minor, posted.scale),
        },
    }


def page_json(page: Page[Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "data": items,
        "next_cursor": page.next_cursor,
        "has_more": page.next_cursor is not None,
    }


def hold_json(hold: Hold, scale: int) -> dict[str, Any]:
    return {
        "id": hold.id,
        "account_id": hold.account_id,
        "mode": hold.mode.value,
        "amount": format_amount(hold.amount_minor, scale),
        "status": hold.status.value,
        "captured": format_amount(hold.captured_minor, scale),
        "expires_at": hold.expires_at,
        "reference": hold.reference,
        "metadata": hold.metadata,
        "created_at": hold.created_at,
        "resolved_at": hold.resolved_at,
    }


def hold_result_json(result: HoldResult) -> dict[str, Any]:
    """A hold; after a capture, also the charge it posted and the balance after it."""
    body: dict[str, Any] = {"hold": hold_json(result.hold, result.scale)}
    if result.capture is not None:
        body.update(posted_json(result.capture))
    return body


def alert_json(rule: AlertRule, scale: int) -> dict[str, Any]:
    return {
        "id": rule.id,
        "account_id": rule.account_id,
        "mode": rule.mode.value,
        "below": format_amount(rule.below_minor, scale),
        "hysteresis": format_amount(rule.hysteresis_minor, scale),
        "state": "low" if rule.low else "ok",
        "recharge": _recharge_json(rule.recharge, scale),
        "created_at": rule.created_at,
    }


def _recharge_json(recharge: Recharge | None, scale: int) -> dict[str, Any] | None:
    if recharge is None:
        return None

    def text(minor: int | None) -> str | None:
        return None if minor is None else format_amount(minor, scale)

    return {
        "amount": text(recharge.amount_minor),
        "up_to": text(recharge.up_to_minor),
        "max_failures": recharge.max_failures,
        "failures": recharge.failures,
        "disabled_at": recharge.disabled_at,
    }


def event_json(event: Event) -> dict[str, Any]:
    """An event as its webhooks carry it (the stored payload)."""
    body: dict[str, Any] = json.loads(event.payload)
    return body


def webhook_json(webhook: Webhook, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": webhook.id,
        "url": webhook.url,
        "account_id": webhook.account_id,
        "events": list(webhook.events),
        "created_at": webhook.created_at,
    }
    if secret is not None:
        body["secret"] = secret
    return body


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "webhook_id": delivery.webhook_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at if delivery.status == "pending" else None,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
    }
