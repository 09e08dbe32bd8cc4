"""The admin API's responses (and the CLI's ``--json``), built from storage records.

Each ``*_shape`` function fills in its typed shape from :mod:`birdbalance.shapes` (where
every response is defined once, and the OpenAPI schemas come from): the operations return
them, and the HTTP layer and the CLI render them (:func:`birdbalance.shapes.render`).
The few ``*_json`` functions render at once, for callers that only ever want JSON. Amounts
are exact decimal strings; ``type`` is MessageBird's balance type.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import msgspec

from birdbalance import shapes
from birdbalance.daily import Day
from birdbalance.errors import ServiceError
from birdbalance.ids import utc_timestamp
from birdbalance.ledger import EntryKind, Mode
from birdbalance.money import balance_type, format_amount
from birdbalance.records import (
    Account,
    AdminToken,
    AlertRule,
    ApiKey,
    AuditRecord,
    BulkOutcome,
    Delivery,
    Entry,
    Event,
    Hold,
    HoldResult,
    LedgerTotals,
    Page,
    PostedEntry,
    Recharge,
    SharedSpend,
    SubAccounts,
    Transfer,
    TransferResult,
    Webhook,
)
from birdbalance.shapes import render
from birdbalance.spending import remaining

T = TypeVar("T")


def _ledger(totals: LedgerTotals, scale: int) -> shapes.Ledger:
    """``amount`` is the ledger's balance; ``pending`` what holds reserve of it;
    ``available`` the rest, which is what ``GET /balance`` shows for a prepaid account."""
    return shapes.Ledger(
        amount=format_amount(totals.balance_minor, scale),
        pending=format_amount(totals.held_minor, scale),
        available=format_amount(totals.balance_minor - totals.held_minor, scale),
        entries=totals.entry_count,
    )


def _shared_shape(account: Account) -> shapes.SharedBalance | None:
    if account.funding_id is None or account.shared is None:
        return None
    scale, limit = account.scale, account.spend_limit

    def one(spend: SharedSpend) -> shapes.SharedLedger:
        left = remaining(limit, spend.spent_minor)
        return shapes.SharedLedger(
            spent=format_amount(spend.spent_minor, scale),
            remaining=None if left is None else format_amount(left, scale),
            available=format_amount(spend.available_minor, scale),
        )

    return shapes.SharedBalance(
        funding=account.funding_id,
        spending_limit=None
        if limit is None
        else shapes.AccountSpendingLimit(
            amount=format_amount(limit.amount_minor, scale), period=limit.period.value
        ),
        live=one(account.shared[Mode.LIVE]),
        test=one(account.shared[Mode.TEST]),
    )


def account_shape(account: Account) -> shapes.Account:
    return shapes.Account(**_account_fields(account))


def _account_fields(account: Account) -> dict[str, Any]:
    limit = account.credit_limit_minor
    return dict(
        id=account.id,
        name=account.name,
        payment=account.payment,
        type=balance_type(account.asset),
        scale=account.scale,
        credit_limit=None if limit is None else format_amount(limit, account.scale),
        metadata=account.metadata,
        created_at=account.created_at,
        balances=shapes.Balances(
            live=_ledger(account.live, account.scale),
            test=_ledger(account.test, account.scale),
        ),
        parent=account.parent_id,
        balance="own" if account.funding_id is None else "shared",
        shared=_shared_shape(account),
    )


def subaccounts_shape(parent: Account, found: SubAccounts) -> shapes.SubAccounts:
    """A page of sub-accounts, and the totals of all of them (in the parent's asset)."""
    page = found.page
    return shapes.SubAccounts(
        parent=parent.id,
        data=[
            shapes.SubAccount(
                **_account_fields(a),
                month_usage=format_amount(found.month_usage_minor.get(a.id, 0), parent.scale),
            )
            for a in page.items
        ],
        next_cursor=page.next_cursor,
        has_more=page.next_cursor is not None,
        totals=shapes.SubAccountTotals(
            accounts=found.count,
            live=_ledger(
                LedgerTotals(found.live_balance_minor, 0, found.live_held_minor), parent.scale
            ),
        ),
    )


def key_status(key: ApiKey, now: str) -> str:
    """``live``, ``expiring`` (rotated, still live until ``expires_at``), ``expired`` or
    ``revoked``."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is None:
        return "live"
    return "expiring" if key.expires_at > now else "expired"


def key_shape(key: ApiKey, secret: str | None = None) -> shapes.ApiKey:
    return shapes.ApiKey(
        id=key.id,
        account_id=key.account_id,
        mode=key.mode,
        hint=key.hint,
        status=key_status(key, utc_timestamp()),
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        key=msgspec.UNSET if secret is None else secret,
    )


def rotated_shape(new: ApiKey, secret: str | None, old: ApiKey) -> shapes.RotatedKey:
    """A rotation: the new key (with its secret, once) and the old one, now expiring."""
    return shapes.RotatedKey(key=key_shape(new, secret), previous=key_shape(old, None))


def token_shape(token: AdminToken, secret: str | None = None) -> shapes.AdminToken:
    return shapes.AdminToken(
        id=token.id,
        name=token.name,
        scope=token.scope,
        hint=token.hint,
        created_at=token.created_at,
        revoked_at=token.revoked_at,
        account=token.account_id,
        token=msgspec.UNSET if secret is None else secret,
    )


def audit_shape(record: AuditRecord) -> shapes.AuditRecord:
    return shapes.AuditRecord(
        seq=record.seq,
        at=record.at,
        actor=record.actor,
        action=record.action,
        target=record.target,
        address=record.address,
        status=record.status,
        detail=record.detail,
    )


def audit_json(record: AuditRecord) -> dict[str, Any]:
    """An audit record as JSON; ``detail`` is free-form, and shown as text if need be."""
    return render(audit_shape(record))


def entry_shape(entry: Entry, scale: int) -> shapes.Entry:
    return shapes.Entry(
        id=entry.id,
        account_id=entry.account_id,
        mode=entry.mode,
        seq=entry.seq,
        kind=entry.kind,
        amount=format_amount(entry.amount_minor, scale),
        balance_after=format_amount(entry.balance_after_minor, scale),
        refund_of=entry.refund_of,
        reference=entry.reference,
        metadata=entry.metadata,
        created_at=entry.created_at,
        hold=entry.hold_id,
        attributed_to=entry.attributed_to,
    )


def kind_totals(totals_minor: dict[str, int], scale: int) -> shapes.KindTotals:
    """An amount per entry kind (0 for a kind with none)."""
    amounts = {k.value: format_amount(totals_minor.get(k.value, 0), scale) for k in EntryKind}
    return shapes.KindTotals(**amounts)


def day_shape(day: Day, scale: int) -> shapes.DailyDay:
    """One chart day: closing balance, usage (charges less refunds) and totals by kind."""
    totals = {k.value: v for k, v in day.totals_minor.items()}
    return shapes.DailyDay(
        day=day.day,
        balance=format_amount(day.balance_minor, scale),
        usage=format_amount(day.usage_minor, scale),
        totals=kind_totals(totals, scale),
        entries=day.entries,
    )


def _posted_balance(posted: PostedEntry) -> shapes.EntryBalance:
    entry = posted.entry
    return shapes.EntryBalance(
        mode=entry.mode,
        payment=posted.payment,
        type=balance_type(posted.asset),
        amount=format_amount(entry.balance_after_minor, posted.scale),
    )


def posted_shape(posted: PostedEntry) -> shapes.PostedEntry:
    return shapes.PostedEntry(
        entry=entry_shape(posted.entry, posted.scale), balance=_posted_balance(posted)
    )


def posted_json(posted: PostedEntry) -> dict[str, Any]:
    """A posted entry as JSON values (the CLI's answer)."""
    return render(posted_shape(posted))


def posted_bytes(posted: PostedEntry) -> bytes:
    """A posted entry's answer, encoded from its shape in one step (the write path's;
    the same bytes as :func:`posted_json` through ``json.dumps``, compact and UTF-8)."""
    return msgspec.json.encode(posted_shape(posted))


def page_shape(page: Page[Any], items: list[T]) -> shapes.Page[T]:
    """A page of a listing: ``items`` are the shapes of ``page``'s records."""
    return shapes.Page(
        data=items, next_cursor=page.next_cursor, has_more=page.next_cursor is not None
    )


def hold_shape(hold: Hold, scale: int) -> shapes.Hold:
    return shapes.Hold(
        id=hold.id,
        account_id=hold.account_id,
        mode=hold.mode,
        amount=format_amount(hold.amount_minor, scale),
        status=hold.status,
        captured=format_amount(hold.captured_minor, scale),
        expires_at=hold.expires_at,
        reference=hold.reference,
        metadata=hold.metadata,
        created_at=hold.created_at,
        resolved_at=hold.resolved_at,
    )


def hold_result_shape(result: HoldResult) -> shapes.HoldResult:
    """A hold; after a capture, also the charge it posted and the balance after it."""
    capture = result.capture
    return shapes.HoldResult(
        hold=hold_shape(result.hold, result.scale),
        entry=msgspec.UNSET if capture is None else entry_shape(capture.entry, capture.scale),
        balance=msgspec.UNSET if capture is None else _posted_balance(capture),
    )


def transfer_shape(transfer: Transfer) -> shapes.Transfer:
    return shapes.Transfer(
        id=transfer.id,
        from_=transfer.from_account,
        to=transfer.to_account,
        mode=transfer.mode,
        amount=format_amount(transfer.amount_minor, transfer.scale),
        from_entry=transfer.from_entry,
        to_entry=transfer.to_entry,
        reference=transfer.reference,
        metadata=transfer.metadata,
        created_at=transfer.created_at,
    )


def transfer_result_shape(result: TransferResult) -> shapes.TransferResult:
    """A transfer and both legs, each with its ledger's balance after it."""
    return shapes.TransferResult(
        transfer=transfer_shape(result.transfer),
        legs=[posted_shape(leg) for leg in result.legs],
    )


def alert_shape(rule: AlertRule, scale: int) -> shapes.Alert:
    return shapes.Alert(
        id=rule.id,
        account_id=rule.account_id,
        mode=rule.mode,
        below=format_amount(rule.below_minor, scale),
        hysteresis=format_amount(rule.hysteresis_minor, scale),
        state="low" if rule.low else "ok",
        recharge=_recharge_shape(rule.recharge, scale),
        created_at=rule.created_at,
    )


def _recharge_shape(recharge: Recharge | None, scale: int) -> shapes.Recharge | None:
    if recharge is None:
        return None

    def text(minor: int | None) -> str | None:
        return None if minor is None else format_amount(minor, scale)

    return shapes.Recharge(
        amount=text(recharge.amount_minor),
        up_to=text(recharge.up_to_minor),
        max_failures=recharge.max_failures,
        failures=recharge.failures,
        disabled_at=recharge.disabled_at,
    )


def event_json(event: Event) -> dict[str, Any]:
    """An event exactly as its webhooks carry it: the payload stored when it was written
    (:class:`birdbalance.shapes.Event` describes it)."""
    body: dict[str, Any] = json.loads(event.payload)
    return body


def webhook_shape(webhook: Webhook, secret: str | None = None) -> shapes.Webhook:
    return shapes.Webhook(
        id=webhook.id,
        url=webhook.url,
        account_id=webhook.account_id,
        events=[shapes.EventKind(e) for e in webhook.events],
        created_at=webhook.created_at,
        secret=msgspec.UNSET if secret is None else secret,
    )


def delivery_shape(delivery: Delivery) -> shapes.Delivery:
    return shapes.Delivery(
        id=delivery.id,
        event_id=delivery.event_id,
        webhook_id=delivery.webhook_id,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
    )


def bulk_answer_shape(dry_run: bool, outcome: BulkOutcome) -> shapes.BulkAnswer:
    """A bulk request's answer: each operation's result, in order, and its ledgers."""
    results = []
    for index, result in enumerate(outcome.results):
        if isinstance(result, ServiceError):
            error = result.to_body()["errors"][0]
            results.append(
                shapes.BulkResult(
                    index=index, status=result.status_code, errors=[shapes.ErrorItem(**error)]
                )
            )
        elif isinstance(result, PostedEntry):
            posted = posted_shape(result)
            results.append(
                shapes.BulkResult(
                    index=index,
                    status=201,
                    replayed=result.replayed,
                    entry=posted.entry,
                    balance=posted.balance,
                )
            )
        else:
            held = hold_result_shape(result)
            results.append(
                shapes.BulkResult(
                    index=index,
                    status=201,
                    replayed=result.replayed,
                    hold=held.hold,
                    entry=held.entry,
                    balance=held.balance,
                )
            )
    balances = [
        shapes.BulkBalance(
            account_id=ledger.account_id,
            mode=ledger.mode,
            payment=ledger.payment,
            type=balance_type(ledger.asset),
            amount=format_amount(ledger.balance_minor, ledger.scale),
            pending=format_amount(ledger.held_minor, ledger.scale),
            available=format_amount(ledger.balance_minor - ledger.held_minor, ledger.scale),
        )
        for ledger in outcome.ledgers
    ]
    return shapes.BulkAnswer(dry_run=dry_run, results=results, balances=balances)
