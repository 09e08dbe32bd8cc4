"""The operations of the admin API and the CLI, on a :class:`~birdbalance.storage.Store`.

Each method takes untrusted input (a JSON object, query values, an ``Idempotency-Key``),
validates it with :mod:`birdbalance.validation`, calls the store, and returns the JSON
representation. The HTTP layer and the CLI are thin shells around it, so both behave
identically. Methods are synchronous: the HTTP layer runs writes on its writer thread.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

from birdbalance import keys as access_keys
from birdbalance.alerts import EventType
from birdbalance.daily import MAX_CHART_DAYS, day_range, fill_days
from birdbalance.errors import InvalidParameter, MissingParameter
from birdbalance.ids import utc_timestamp
from birdbalance.ledger import EntryKind, HoldStatus, Mode, Payment
from birdbalance.money import AssetError, balance_type, format_amount, normalize_asset, scale_of
from birdbalance.records import (
    EntryFilter,
    Idempotency,
    NewAccount,
    NewAlertRule,
    NewEntry,
    NewHold,
    NewKey,
    NewToken,
    NewWebhook,
    Recharge,
    Statement,
    TokenScope,
)
from birdbalance.representations import (
    account_json,
    alert_json,
    audit_json,
    day_json,
    delivery_json,
    entry_json,
    event_json,
    hold_json,
    hold_result_json,
    key_json,
    page_json,
    posted_json,
    token_json,
    webhook_json,
)
from birdbalance.storage import MAX_PAGE_SIZE, Store
from birdbalance.storage.sql import MAX_AUDIT_PAGE
from birdbalance.targets import MAX_URL_CHARS, target_problem
from birdbalance.timestamps import TimestampError, parse_timestamp, timestamp_after
from birdbalance.validation import (
    MAX_NAME_CHARS,
    MAX_REFERENCE_CHARS,
    Fields,
    JSONNumber,
    filter_text,
    idempotency_key,
    is_digits,
    page_limit,
    resource_id,
)
from birdbalance.webhooks import new_secret

DEFAULT_PAGE_SIZE: Final = 50
#: How long a hold lives unless the request says otherwise (delivery reports can be slow).
DEFAULT_HOLD_EXPIRY_S: Final = 24 * 3600
MAX_HOLD_EXPIRY_S: Final = 30 * 24 * 3600
#: Alert rules per account (both ledgers together); each write reads them all.
MAX_ALERTS_PER_ACCOUNT: Final = 20
#: Webhook subscriptions in all; each event fans out to those that match.
MAX_WEBHOOKS: Final = 100
DELIVERY_STATUSES: Final = ("pending", "delivered", "dead")
#: How long a rotated key keeps working beside its replacement, unless asked otherwise.
DEFAULT_ROTATION_OVERLAP_S: Final = 24 * 3600
MAX_ROTATION_OVERLAP_S: Final = 30 * 24 * 3600
MAX_AUDIT_FILTER_CHARS: Final = 255


def fingerprint(operation: str, target: str, body: Mapping[str, Any]) -> str:
    """What makes two requests "the same" for an ``Idempotency-Key``.

    The operation, its target and the body's canonical JSON; ``9.2`` and ``"9.2"`` are
    the same amount and so the same request.
    """
    canonical = json.dumps([operation, target, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Service:
    """Every admin operation; returns JSON-ready dicts, raises ``ServiceError``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _idem(
        key: str | None, operation: str, target: str, body: Mapping[str, Any], *, required: bool
    ) -> Idempotency | None:
        checked = idempotency_key(key, required=required)
        if checked is None:
            return None
        return Idempotency(checked, fingerprint(operation, target, body))

    # ------------------------------------------------------------------ accounts

    def create_account(self, body: Mapping[str, Any], idem_key: str | None) -> dict[str, Any]:
        idem = self._idem(idem_key, "create_account", "", body, required=False)
        fields = Fields(body)
        payment_text = fields.text("payment", required=True)
        if payment_text not in (Payment.PREPAID.value, Payment.POSTPAID.value):
            raise InvalidParameter("payment must be prepaid or postpaid", "payment")
        payment = Payment(payment_text)
        type_text = fields.text("type", required=True, max_chars=16)
        assert type_text is not None
        try:
            asset = normalize_asset(type_text)
        except AssetError as exc:
            raise InvalidParameter(str(exc), "type") from None
        name = fields.text("name", max_chars=MAX_NAME_CHARS)
        credit_limit = fields.amount("credit_limit", required=False)
        if credit_limit is not None and payment is Payment.PREPAID:
            raise InvalidParameter("only postpaid accounts have a credit limit", "credit_limit")
        metadata = fields.metadata()
        fields.done()
        new = NewAccount(name, payment, asset, scale_of(asset), credit_limit, metadata)
        return account_json(self.store.create_account(new, idem))

    def get_account(self, account_id: str) -> dict[str, Any]:
        return account_json(self.store.get_account(resource_id(account_id, "account")))

    def list_accounts(
        self, *, cursor: str | None, limit: str | None, search: str | None = None
    ) -> dict[str, Any]:
        size = _id_page_size(cursor, limit)
        search = filter_text(search, "search", MAX_NAME_CHARS)
        page = self.store.list_accounts(cursor, size, search or None)
        return page_json(page, [account_json(a) for a in page.items])

    # ------------------------------------------------------------------ keys

    def create_key(
        self, account_id: str, body: Mapping[str, Any], idem_key: str | None
    ) -> dict[str, Any]:
        """Create an access key; the secret is in the answer once and never again.

        An idempotent replay answers with the same key's record, without the secret
        (it is not stored anywhere).
        """
        account_id = resource_id(account_id, "account")
        idem = self._idem(idem_key, "create_key", account_id, body, required=False)
        fields = Fields(body)
        mode = fields.mode()
        fields.done()
        secret = access_keys.generate_key(mode)
        new = NewKey(
            account_id, mode, self.store.hasher.digest(secret), access_keys.hint_of(secret)
        )
        record, replayed = self.store.create_key(new, idem)
        return key_json(record, None if replayed else secret)

    def rotate_key(
        self, key_id: str, body: Mapping[str, Any], idem_key: str | None
    ) -> dict[str, Any]:
        """A new key for the same ledger, shown once; the old one keeps working for
        ``expires_in`` seconds (default one day, 0: it stops now), so clients can move
        over with two keys live at once."""
        key_id = resource_id(key_id, "key")
        idem = self._idem(idem_key, "rotate_key", key_id, body, required=False)
        fields = Fields(body)
        expires_in_s = _seconds(
            fields, "expires_in", DEFAULT_ROTATION_OVERLAP_S, 0, MAX_ROTATION_OVERLAP_S
        )
        fields.done()
        old = self.store.get_key(key_id)
        secret = access_keys.generate_key(old.mode)
        new, old, replayed = self.store.rotate_key(
            key_id,
            self.store.hasher.digest(secret),
            access_keys.hint_of(secret),
            timestamp_after(expires_in_s),
            idem,
        )
        return {"key": key_json(new, None if replayed else secret), "previous": key_json(old)}

    # ------------------------------------------------------------------ admin tokens

    def create_token(self, name: str, scope: str) -> dict[str, Any]:
        """A new admin token, shown once: ``read`` (GET only) or ``write`` (everything)."""
        fields = Fields({"name": name, "scope": scope})
        checked_name = fields.text("name", required=True, max_chars=MAX_NAME_CHARS)
        assert checked_name is not None
        if scope not in {s.value for s in TokenScope}:
            raise InvalidParameter("scope must be read or write", "scope")
        token = access_keys.generate_token()
        new = NewToken(
            checked_name,
            TokenScope(scope),
            self.store.hasher.digest(token),
            f"{access_keys.TOKEN_PREFIX}…{token[-4:]}",
        )
        return token_json(self.store.create_token(new), token)

    def list_tokens(self) -> dict[str, Any]:
        return {"data": [token_json(t) for t in self.store.list_tokens()]}

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        return token_json(self.store.revoke_token(resource_id(token_id, "token")))

    def list_audit(
        self,
        *,
        cursor: str | None,
        limit: str | None,
        actor: str | None = None,
        action: str | None = None,
    ) -> dict[str, Any]:
        """The audit log, newest first; ``cursor`` is the ``seq`` a page ended before."""
        size = page_limit(limit, default=DEFAULT_PAGE_SIZE, maximum=MAX_AUDIT_PAGE)
        if cursor is not None and not (is_digits(cursor) and len(cursor) <= 18):
            raise InvalidParameter("cursor must be a next_cursor this API gave out", "cursor")
        actor = filter_text(actor, "actor", MAX_AUDIT_FILTER_CHARS)
        action = filter_text(action, "action", MAX_AUDIT_FILTER_CHARS)
        page = self.store.list_audit(None if cursor is None else int(cursor), size, actor, action)
        return page_json(page, [audit_json(r) for r in page.items])

    def list_keys(self, account_id: str) -> dict[str, Any]:
        keys = self.store.list_keys(resource_id(account_id, "account"))
        return {"data": [key_json(k) for k in keys]}

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return key_json(self.store.revoke_key(resource_id(key_id, "key")))

    # ------------------------------------------------------------------ entries

    def post_entry(
        self, account_id: str, kind: EntryKind, body: Mapping[str, Any], idem_key: str | None
    ) -> dict[str, Any]:
        """Append a top-up, charge, refund or adjustment (``Idempotency-Key`` required)."""
        new, idem = self.entry_request(account_id, kind, body, idem_key)
        return posted_json(self.store.post_entry(new, idem))

    def entry_request(
        self, account_id: str, kind: EntryKind, body: Mapping[str, Any], idem_key: str | None
    ) -> tuple[NewEntry, Idempotency]:
        """Validate an entry request (no I/O), ready for the store or a group commit."""
        account_id = resource_id(account_id, "account")
        idem = self._idem(idem_key, f"post_{kind.value}", account_id, body, required=True)
        assert idem is not None
        fields = Fields(body)
        amount = fields.amount("amount", allow_negative=kind is EntryKind.ADJUSTMENT)
        assert amount is not None
        refund_of = None
        if kind is EntryKind.REFUND:
            charge = fields.text("charge")
            if charge is None:
                raise MissingParameter("a refund must name the charge it refunds", "charge")
            refund_of = resource_id(charge, "charge")
        mode = fields.mode()
        reference = fields.text("reference", max_chars=MAX_REFERENCE_CHARS)
        metadata = fields.metadata()
        fields.done()
        return NewEntry(account_id, mode, kind, amount, refund_of, reference, metadata), idem

    def list_entries(
        self,
        account_id: str,
        *,
        mode: str | None,
        cursor: str | None,
        limit: str | None,
        kind: str | None = None,
        start: str | None = None,
        end: str | None = None,
        reference: str | None = None,
    ) -> dict[str, Any]:
        """A page of entries, newest first, narrowed to a kind, a time range
        ``[from, to)`` and an exact reference (each optional)."""
        account_id = resource_id(account_id, "account")
        ledger_mode = _mode(mode)
        _check_seq_cursor(cursor)
        size = page_limit(limit, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        filters = entry_filter(kind=kind, start=start, end=end, reference=reference)
        account = self.store.get_account(account_id)
        page = self.store.list_entries(account_id, ledger_mode, cursor, size, filters)
        return page_json(page, [entry_json(e, account.scale) for e in page.items])

    def daily(
        self, account_id: str, *, mode: str | None, days: str | None, today: date | None = None
    ) -> dict[str, Any]:
        """The last ``days`` UTC days (default 30, at most 366), ending today: each day's
        closing balance, usage and totals by kind, from the per-day totals."""
        account_id = resource_id(account_id, "account")
        ledger_mode = _mode(mode)
        count = page_limit(days, default=30, maximum=MAX_CHART_DAYS, parameter="days")
        first, last = day_range(today or datetime.now(UTC).date(), count)
        series = self.store.daily_totals(account_id, ledger_mode, first, last)
        account = series.account
        return {
            "account_id": account_id,
            "mode": ledger_mode.value,
            "type": balance_type(account.asset),
            "from": first,
            "to": last,
            "opening_balance": format_amount(series.opening_minor, account.scale),
            "data": [day_json(d, account.scale) for d in fill_days(series, first, last)],
        }

    def _statement_range(
        self, account_id: str, start: str | None, end: str | None, mode: str | None
    ) -> tuple[str, Mode, str, str]:
        account_id = resource_id(account_id, "account")
        ledger_mode = _mode(mode)
        if start is None:
            raise MissingParameter("from is required (an RFC 3339 time)", "from")
        now = utc_timestamp()
        try:
            first = parse_timestamp(start)
            # A range reaching into the future ends now: entries written later, even in
            # the range, would change a statement already given out.
            last = min(parse_timestamp(end), now) if end is not None else now
        except TimestampError as exc:
            raise InvalidParameter(f"from and to must be RFC 3339 times: {exc}", "from") from None
        if first > last:
            raise InvalidParameter("from must not be after to (or now)", "from")
        return account_id, ledger_mode, first, last

    def statement(
        self,
        account_id: str,
        *,
        start: str | None,
        end: str | None,
        mode: str | None,
        cursor: str | None,
        limit: str | None,
    ) -> dict[str, Any]:
        """Opening balance, totals by kind, closing balance, and a page of the entries."""
        account_id, ledger_mode, first, last = self._statement_range(account_id, start, end, mode)
        _check_seq_cursor(cursor)
        size = page_limit(limit, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        found = self.store.statement(account_id, ledger_mode, first, last, int(cursor or 0), size)
        scale = found.account.scale
        return {
            "account_id": account_id,
            "mode": ledger_mode.value,
            "type": account_json(found.account)["type"],
            "from": first,
            "to": last,
            "opening_balance": format_amount(found.opening_minor, scale),
            "closing_balance": format_amount(found.closing_minor, scale),
            "totals": {
                kind.value: format_amount(found.totals_minor.get(kind.value, 0), scale)
                for kind in EntryKind
            },
            "counts": {kind.value: found.counts.get(kind.value, 0) for kind in EntryKind},
            "data": [entry_json(e, scale) for e in found.entries],
            "next_cursor": None if found.next_cursor is None else str(found.next_cursor),
        }

    def statement_csv(
        self, account_id: str, *, start: str | None, end: str | None, mode: str | None
    ) -> tuple[str, Iterator[str]]:
        """A file name and the CSV text in chunks (every entry of the range, any number).

        Checks everything before the first chunk, so errors are answers, not broken files.
        The closing row and the totals are sums of the rows written, so the file adds up
        by construction; the first page's snapshot gives the opening balance.
        """
        account_id, ledger_mode, first, last = self._statement_range(account_id, start, end, mode)
        head = self.store.statement(account_id, ledger_mode, first, last, 0, CSV_PAGE_ROWS)
        name = f"statement-{account_id}-{ledger_mode.value}-{first[:10]}-{last[:10]}.csv"
        return name, _statement_csv(self.store, head, ledger_mode, first, last)

    def balance_at(self, account_id: str, *, at: str | None, mode: str | None) -> dict[str, Any]:
        """A ledger's balance at a past moment, from the running balances of its entries."""
        account_id = resource_id(account_id, "account")
        ledger_mode = _mode(mode)
        if at is None:
            raise MissingParameter("at is required (an RFC 3339 time)", "at")
        try:
            moment = parse_timestamp(at)
        except TimestampError as exc:
            raise InvalidParameter(f"at {exc}", "at") from None
        found = self.store.balance_at(account_id, ledger_mode, moment)
        account = found.account
        return {
            "account_id": account_id,
            "mode": ledger_mode.value,
            "at": moment,
            "payment": account.payment.value,
            "type": account_json(account)["type"],
            "amount": format_amount(found.balance_minor, account.scale),
            "seq": found.seq,
            "entry_at": found.entry_at,
        }

    # ------------------------------------------------------------------ holds

    def create_hold(
        self, account_id: str, body: Mapping[str, Any], idem_key: str | None
    ) -> dict[str, Any]:
        """Reserve an amount until it is captured, voided or expires (key required)."""
        account_id = resource_id(account_id, "account")
        idem = self._idem(idem_key, "create_hold", account_id, body, required=True)
        assert idem is not None
        fields = Fields(body)
        amount = fields.amount("amount")
        assert amount is not None
        expires_in_s = _seconds(fields, "expires_in", DEFAULT_HOLD_EXPIRY_S, 1, MAX_HOLD_EXPIRY_S)
        mode = fields.mode()
        reference = fields.text("reference", max_chars=MAX_REFERENCE_CHARS)
        metadata = fields.metadata()
        fields.done()
        new = NewHold(account_id, mode, amount, timestamp_after(expires_in_s), reference, metadata)
        result = self.store.create_hold(new, idem)
        return hold_result_json(result)

    def capture_hold(
        self, hold_id: str, body: Mapping[str, Any], idem_key: str | None
    ) -> dict[str, Any]:
        """Charge all of a hold (no ``amount``) or part of it; the rest is released."""
        hold_id = resource_id(hold_id, "hold")
        idem = self._idem(idem_key, "capture_hold", hold_id, body, required=True)
        assert idem is not None
        fields = Fields(body)
        amount = fields.amount("amount", required=False)
        reference = fields.text("reference", max_chars=MAX_REFERENCE_CHARS)
        metadata = fields.metadata()
        fields.done()
        result = self.store.capture_hold(hold_id, amount, reference, metadata, idem)
        return hold_result_json(result)

    def void_hold(
        self, hold_id: str, body: Mapping[str, Any], idem_key: str | None
    ) -> dict[str, Any]:
        """Release a pending hold without charging anything."""
        hold_id = resource_id(hold_id, "hold")
        idem = self._idem(idem_key, "void_hold", hold_id, body, required=True)
        assert idem is not None
        Fields(body).done()
        result = self.store.void_hold(hold_id, idem)
        return hold_result_json(result)

    def get_hold(self, hold_id: str) -> dict[str, Any]:
        hold = self.store.get_hold(resource_id(hold_id, "hold"))
        return hold_json(hold, self.store.get_account(hold.account_id).scale)

    def list_holds(
        self,
        account_id: str,
        *,
        mode: str | None,
        status: str | None,
        cursor: str | None,
        limit: str | None,
    ) -> dict[str, Any]:
        account_id = resource_id(account_id, "account")
        ledger_mode = _mode(mode)
        if status is not None and status not in {s.value for s in HoldStatus}:
            raise InvalidParameter("status must be pending, captured, voided or expired", "status")
        size = _id_page_size(cursor, limit)
        account = self.store.get_account(account_id)
        page = self.store.list_holds(
            account_id, ledger_mode, HoldStatus(status) if status else None, cursor, size
        )
        return page_json(page, [hold_json(h, account.scale) for h in page.items])

    # ------------------------------------------------------------------ alerts

    def create_alert(self, account_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A threshold on a ledger's available amount: ``balance.low`` once below it,
        ``balance.recovered`` once above it plus ``hysteresis``."""
        account_id = resource_id(account_id, "account")
        fields = Fields(body)
        below = fields.amount("below", allow_negative=True)
        assert below is not None
        hysteresis = fields.amount("hysteresis", required=False) or 0
        if hysteresis < 0:
            raise InvalidParameter("hysteresis must not be negative", "hysteresis")
        mode = fields.mode()
        recharge = _recharge(fields.take("recharge"), below)
        fields.done()
        account = self.store.get_account(account_id)
        new = NewAlertRule(account_id, mode, below, hysteresis, recharge)
        rule = self.store.create_alert_rule(new, MAX_ALERTS_PER_ACCOUNT)
        return alert_json(rule, account.scale)

    def recharge_failed(self, alert_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The payment system could not top up after a ``topup.requested``."""
        fields = Fields(body)
        reason = fields.text("reason", max_chars=500)
        fields.done()
        rule = self.store.record_recharge_failure(resource_id(alert_id, "alert"), reason)
        return alert_json(rule, self.store.get_account(rule.account_id).scale)

    def list_alerts(self, account_id: str) -> dict[str, Any]:
        account_id = resource_id(account_id, "account")
        scale = self.store.get_account(account_id).scale
        return {"data": [alert_json(r, scale) for r in self.store.list_alert_rules(account_id)]}

    def delete_alert(self, alert_id: str) -> dict[str, Any]:
        rule = self.store.delete_alert_rule(resource_id(alert_id, "alert"))
        return alert_json(rule, self.store.get_account(rule.account_id).scale)

    def list_events(
        self, *, account_id: str | None, cursor: str | None, limit: str | None
    ) -> dict[str, Any]:
        """Events newest first: what happened, with the exact body webhooks carry."""
        if account_id is not None:
            account_id = resource_id(account_id, "account")
            self.store.get_account(account_id)
        size = _id_page_size(cursor, limit)
        page = self.store.list_events(account_id, cursor, size)
        return page_json(page, [event_json(e) for e in page.items])

    # ------------------------------------------------------------------ webhooks

    def create_webhook(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Subscribe a URL to events; the answer holds the signing secret, this once."""
        fields = Fields(body)
        url = fields.text("url", required=True, max_chars=MAX_URL_CHARS)
        assert url is not None
        problem = target_problem(url)
        if problem is not None:
            raise InvalidParameter(problem, "url")
        account = fields.text("account")
        account_id = resource_id(account, "account") if account is not None else None
        events = _event_types(fields.take("events"))
        fields.done()
        secret = new_secret()
        webhook = self.store.create_webhook(
            NewWebhook(url, account_id, events, secret), MAX_WEBHOOKS
        )
        return webhook_json(webhook, secret)

    def list_webhooks(self) -> dict[str, Any]:
        return {"data": [webhook_json(w) for w in self.store.list_webhooks()]}

    def delete_webhook(self, webhook_id: str) -> dict[str, Any]:
        return webhook_json(self.store.delete_webhook(resource_id(webhook_id, "webhook")))

    def list_deliveries(
        self,
        *,
        status: str | None,
        webhook_id: str | None,
        cursor: str | None,
        limit: str | None,
    ) -> dict[str, Any]:
        if status is not None and status not in DELIVERY_STATUSES:
            raise InvalidParameter("status must be pending, delivered or dead", "status")
        if webhook_id is not None:
            webhook_id = resource_id(webhook_id, "webhook")
        size = _id_page_size(cursor, limit)
        page = self.store.list_deliveries(status, webhook_id, cursor, size)
        return page_json(page, [delivery_json(d) for d in page.items])

    def redeliver(self, delivery_id: str) -> dict[str, Any]:
        """Send a delivery again (delivered or dead-lettered alike)."""
        return delivery_json(self.store.redeliver(resource_id(delivery_id, "delivery")))


def _event_types(value: Any) -> tuple[str, ...]:
    """``events``: a list (or comma-separated string) of event types; empty means all."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    known = {t.value for t in EventType}
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidParameter("events must be a list of event types", "events")
    chosen = tuple(sorted({i.strip() for i in items if i.strip()}))
    unknown = [i for i in chosen if i not in known]
    if unknown:
        raise InvalidParameter(
            f"unknown event type {unknown[0][:40]!r}; known: {', '.join(sorted(known))}",
            "events",
        )
    return chosen


def _seconds(fields: Fields, name: str, default: int, minimum: int, maximum: int) -> int:
    """A whole number of seconds in ``[minimum, maximum]`` (``default`` when absent)."""
    value = fields.take(name)
    if value is None:
        return default
    if isinstance(value, str) and is_digits(value) and minimum <= int(value) <= maximum:
        return int(value)
    raise InvalidParameter(
        f"{name} must be a whole number of seconds, {minimum} to {maximum}", name
    )


def _id_page_size(cursor: str | None, limit: str | None) -> int:
    """Check a listing's id cursor (one this API gave out) and return its page size."""
    size = page_limit(limit, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    if cursor is not None:
        resource_id(cursor, "cursor")
    return size


def _mode(value: str | None) -> Mode:
    if value not in (None, Mode.LIVE.value, Mode.TEST.value):
        raise InvalidParameter("mode must be live or test", "mode")
    return Mode(value or "live")


def entry_filter(
    *, kind: str | None, start: str | None, end: str | None, reference: str | None
) -> EntryFilter:
    """The entries list's filters from query text: ``kind``, ``from``/``to`` (RFC 3339
    times, ``[from, to)``) and ``reference`` (exact)."""
    if kind is not None and kind not in {k.value for k in EntryKind}:
        raise InvalidParameter("kind must be topup, charge, refund or adjustment", "kind")
    reference = filter_text(reference, "reference", MAX_REFERENCE_CHARS)
    times: dict[str, str | None] = {}
    for name, text in (("from", start), ("to", end)):
        try:
            times[name] = None if text is None else parse_timestamp(text)
        except TimestampError as exc:
            raise InvalidParameter(f"{name} must be an RFC 3339 time: {exc}", name) from None
    return EntryFilter(
        kind=None if kind is None else EntryKind(kind),
        start=times["from"],
        end=times["to"],
        reference=reference or None,
    )


def _check_seq_cursor(cursor: str | None) -> None:
    """A ledger page's cursor is the seq this API gave out: digits, and not too many."""
    if cursor is not None and not (is_digits(cursor) and len(cursor) <= 18):
        raise InvalidParameter("cursor is not one this API gave out", "cursor")


def _recharge(value: Any, below_minor: int) -> Recharge | None:
    """``{"amount": "50"}`` or ``{"up_to": "200"}``, and ``max_failures`` (1-100, default 3)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidParameter('recharge must be an object like {"amount": "50"}', "recharge")
    fields = Fields(value)
    amount = fields.amount("amount", required=False)
    up_to = fields.amount("up_to", required=False)
    max_failures = fields.take("max_failures")
    fields.done()
    if (amount is None) == (up_to is None):
        raise InvalidParameter("recharge takes one of amount and up_to", "recharge")
    if amount is not None and amount <= 0:
        raise InvalidParameter("recharge amount must be positive", "recharge")
    if up_to is not None and up_to <= below_minor:
        raise InvalidParameter("recharge up_to must be above the rule's below", "recharge")
    if max_failures is None:
        return Recharge(amount, up_to, 3)
    # A JSON body gives its numbers as text (JSONNumber); the CLI gives an int.
    if isinstance(max_failures, JSONNumber) and is_digits(max_failures) and len(max_failures) <= 3:
        max_failures = int(max_failures)
    if (
        not isinstance(max_failures, int)
        or isinstance(max_failures, bool)
        or not 1 <= max_failures <= 100
    ):
        raise InvalidParameter("recharge max_failures must be an integer 1..100", "recharge")
    return Recharge(amount, up_to, max_failures)


#: Entries per database read while a statement is exported as CSV.
CSV_PAGE_ROWS: Final = 2000
_CSV_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value: str | None) -> str:
    """Free text for a spreadsheet: a cell that starts like a formula is kept as text."""
    if not value:
        return ""
    return "'" + value if value.startswith(_CSV_FORMULA_START) else value


def _statement_csv(
    store: Store, head: Statement, mode: Mode, first: str, last: str
) -> Iterator[str]:
    scale = head.account.scale
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(["created_at", "id", "kind", "amount", "balance_after", "reference"])
    writer.writerow(
        [first, "", "opening_balance", "", format_amount(head.opening_minor, scale), ""]
    )
    running = head.opening_minor
    totals = dict.fromkeys((kind.value for kind in EntryKind), 0)
    page = head
    while True:
        for entry in page.entries:
            running += entry.amount_minor
            assert running == entry.balance_after_minor, "a ledger's entries must chain"
            totals[entry.kind.value] += entry.amount_minor
            writer.writerow(
                [
                    entry.created_at,
                    entry.id,
                    entry.kind.value,
                    format_amount(entry.amount_minor, scale),
                    format_amount(entry.balance_after_minor, scale),
                    _csv_text(entry.reference),
                ]
            )
        yield flush()
        if page.next_cursor is None:
            break
        page = store.statement(
            head.account.id, mode, first, last, page.next_cursor, CSV_PAGE_ROWS, summary=False
        )
    writer.writerow([last, "", "closing_balance", "", format_amount(running, scale), ""])
    for kind, total in totals.items():
        writer.writerow(["", "", f"total_{kind}", format_amount(total, scale), "", ""])
    yield flush()
