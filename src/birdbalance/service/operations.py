"""The operations of the admin API and the CLI, on a :class:`~birdbalance.storage.Store`.

Each method takes untrusted input (a request body as JSON bytes or a mapping, query
values, an ``Idempotency-Key``), reads it into its typed model
(:mod:`birdbalance.request_shapes`) and checks the domain's rules (:mod:`.inputs`,
:mod:`birdbalance.validation`), calls the store, and returns
its typed shape (:mod:`birdbalance.shapes`; events, whose stored JSON is their record,
as that JSON). The HTTP layer and the CLI are thin shells around it, so both
behave identically. Methods are synchronous: the HTTP layer runs writes on its writer
threads."""

from typing import Any, TypeVar

from birdbalance import keys as access_keys, request_shapes as bodies, shapes
from birdbalance.errors import AssetError, InvalidParameter, NotFound
from birdbalance.ledger import EntryKind, HoldStatus, Payment
from birdbalance.money import normalize_asset, scale_of
from birdbalance.records import (
    DELIVERY_STATUSES,
    AdminToken,
    ApiKey,
    Idempotency,
    NewAccount,
    NewAlertRule,
    NewEntry,
    NewKey,
    NewToken,
    NewWebhook,
    PostedEntry,
)
from birdbalance.representations import (
    account_shape,
    alert_shape,
    audit_shape,
    delivery_shape,
    event_json,
    hold_result_shape,
    hold_shape,
    key_shape,
    page_shape,
    posted_shape,
    rotated_shape,
    subaccounts_shape,
    token_shape,
    webhook_shape,
)
from birdbalance.request_shapes import RequestBody, given, metadata_of, mode_of, read, set_or_none
from birdbalance.service.bulk import BulkPosting
from birdbalance.service.inputs import (
    DEFAULT_PAGE_SIZE,
    MAX_ALERTS_PER_ACCOUNT,
    MAX_AUDIT_FILTER_CHARS,
    MAX_WEBHOOKS,
    event_types,
    fingerprint,
    id_page_size,
    minor,
    new_entry,
    new_hold,
    parse_mode,
    recharge_input,
    seconds,
    spend_limit_of,
)
from birdbalance.service.reports import Reports
from birdbalance.service.transfers import Transfers
from birdbalance.shapes import render
from birdbalance.storage import Store
from birdbalance.storage.audit import MAX_AUDIT_PAGE
from birdbalance.targets import target_problem
from birdbalance.timestamps import timestamp_after
from birdbalance.validation import (
    MAX_NAME_CHARS,
    filter_text,
    idempotency_key,
    is_digits,
    page_limit,
    resource_id,
)
from birdbalance.webhooks import new_secret

B = TypeVar("B", bound=bodies.Body)


class Service(Reports, BulkPosting, Transfers):
    """Every admin operation; returns typed shapes (:mod:`birdbalance.shapes`), raises
    ``ServiceError``."""

    def __init__(self, store: Store, *, mail_configured: bool = True) -> None:
        """``mail_configured=False`` (a server without ``BIRDBALANCE_SMTP_*``) refuses
        ``mailto:`` subscriptions, which it could never deliver."""
        super().__init__(store)
        self.mail_configured = mail_configured

    @staticmethod
    def _read(
        model: type[B],
        body: RequestBody,
        key: str | None,
        operation: str,
        target: str,
        *,
        required: bool,
    ) -> tuple[B, Idempotency | None]:
        """The body as ``model``, and its idempotency (the key checked first)."""
        checked = idempotency_key(key, required=required)
        request = read(model, body)
        if checked is None:
            return request, None
        return request, Idempotency(checked, fingerprint(operation, target, given(request)))

    @staticmethod
    def _bodiless(key: str | None, operation: str, target: str) -> Idempotency | None:
        """The idempotency of a write with no body (``operation`` on ``target``)."""
        checked = idempotency_key(key, required=False)
        return None if checked is None else Idempotency(checked, fingerprint(operation, target, {}))

    # ------------------------------------------------------------------ accounts

    def create_account(self, body: RequestBody, idem_key: str | None) -> shapes.Account:
        request, idem = self._read(
            bodies.NewAccount, body, idem_key, "create_account", "", required=False
        )
        payment = request.payment
        try:
            asset = normalize_asset(request.type)
        except AssetError as exc:
            raise InvalidParameter(str(exc), "type") from None
        credit_limit = minor(request.credit_limit, "credit_limit")
        if credit_limit is not None and payment is Payment.PREPAID:
            raise InvalidParameter("only postpaid accounts have a credit limit", "credit_limit")
        parent = set_or_none(request.parent)
        shared = request.balance == "shared"
        if request.balance in ("own", "shared") and parent is None:
            raise InvalidParameter(
                "only a sub-account (with a parent) has a balance mode", "balance"
            )
        limit = spend_limit_of(set_or_none(request.spending_limit))
        if limit is not None and not shared:
            raise InvalidParameter(
                'only a shared sub-account ("balance": "shared") has a spending limit',
                "spending_limit",
            )
        if shared and credit_limit is not None:
            raise InvalidParameter(
                "a shared sub-account spends within its parent's credit limit, not its own",
                "credit_limit",
            )
        new = NewAccount(
            set_or_none(request.name),
            payment,
            asset,
            scale_of(asset),
            credit_limit,
            metadata_of(request.metadata),
            None if parent is None else resource_id(parent, "parent"),
            shared,
            limit,
        )
        return account_shape(self.store.create_account(new, idem))

    def set_spending_limit(
        self, account_id: str, body: RequestBody | None, idem_key: str | None = None
    ) -> shapes.Account:
        """Set a shared sub-account's spending limit (``None``: remove it).

        The next charge is judged by it; what the period already used still counts.
        """
        account_id = resource_id(account_id, "account")
        if body is None:
            limit, idem = None, self._bodiless(idem_key, "remove_spending_limit", account_id)
        else:
            request, idem = self._read(
                bodies.SpendingLimit, body, idem_key, "set_spending_limit", account_id,
                required=False,
            )  # fmt: skip
            limit = spend_limit_of(request)
        return account_shape(self.store.set_spend_limit(account_id, limit, idem))

    def list_subaccounts(
        self, account_id: str, *, cursor: str | None, limit: str | None
    ) -> shapes.SubAccounts:
        """An account's direct sub-accounts, by id, and the totals of all of them."""
        account_id = resource_id(account_id, "account")
        size = id_page_size(cursor, limit)
        parent = self.store.get_account(account_id)
        return subaccounts_shape(parent, self.store.list_subaccounts(account_id, cursor, size))

    def lowest_subaccounts(self, account_id: str, *, offset: int, limit: int) -> shapes.SubAccounts:
        """An account's direct sub-accounts, the lowest spendable first (the dashboard's
        reseller view); ``next_cursor`` is the next page's offset."""
        account_id = resource_id(account_id, "account")
        parent = self.store.get_account(account_id)
        found = self.store.lowest_subaccounts(account_id, offset, limit)
        return subaccounts_shape(parent, found)

    def live_token(self, token_id: str) -> AdminToken | None:
        """The admin token ``token_id`` if it exists and is not revoked."""
        try:
            token = self.store.get_token(token_id)
        except NotFound:
            return None
        return token if token.revoked_at is None else None

    def get_account(self, account_id: str) -> shapes.Account:
        return account_shape(self.store.get_account(resource_id(account_id, "account")))

    def list_accounts(
        self,
        *,
        cursor: str | None,
        limit: str | None,
        search: str | None = None,
        within: str | None = None,
    ) -> shapes.Page[shapes.Account]:
        """Accounts by id; ``within``: only that account's subtree (a confined token's)."""
        size = id_page_size(cursor, limit)
        search = filter_text(search, "search", MAX_NAME_CHARS)
        page = self.store.list_accounts(cursor, size, search or None, within)
        return page_shape(page, [account_shape(a) for a in page.items])

    # ------------------------------------------------------------------ keys

    def create_key(self, account_id: str, body: RequestBody, idem_key: str | None) -> shapes.ApiKey:
        """Create an access key; the secret is in the answer once and never again.

        An idempotent replay answers with the same key's record, without the secret
        (it is not stored anywhere).
        """
        account_id = resource_id(account_id, "account")
        request, idem = self._read(
            bodies.NewKey, body, idem_key, "create_key", account_id, required=False
        )
        mode = mode_of(request.mode)
        secret = access_keys.generate_key(mode)
        new = NewKey(
            account_id, mode, self.store.hasher.digest(secret), access_keys.hint_of(secret)
        )
        record, replayed = self.store.create_key(new, idem)
        return key_shape(record, None if replayed else secret)

    def rotate_key(self, key_id: str, body: RequestBody, idem_key: str | None) -> shapes.RotatedKey:
        """A new key for the same ledger, shown once; the old one keeps working for
        ``expires_in`` seconds (default one day, 0: it stops now), so clients can move
        over with two keys live at once."""
        key_id = resource_id(key_id, "key")
        request, idem = self._read(
            bodies.RotateKey, body, idem_key, "rotate_key", key_id, required=False
        )
        expires_in_s = seconds(
            request.expires_in,
            "expires_in",
            default=bodies.DEFAULT_ROTATION_OVERLAP_S,
            minimum=0,
            maximum=bodies.MAX_ROTATION_OVERLAP_S,
        )
        old = self.store.get_key(key_id)
        secret = access_keys.generate_key(old.mode)
        new, old, replayed = self.store.rotate_key(
            key_id,
            self.store.hasher.digest(secret),
            access_keys.hint_of(secret),
            timestamp_after(expires_in_s),
            idem,
        )
        return rotated_shape(new, None if replayed else secret, old)

    # ------------------------------------------------------------------ admin tokens

    def create_token(self, name: str, scope: str, account: str | None = None) -> shapes.AdminToken:
        """A new admin token, shown once: ``read`` (GET only) or ``write`` (everything);
        with ``account``, confined to that account's subtree."""
        body: dict[str, str] = {"name": name, "scope": scope}
        if account is not None:
            body["account"] = account
        request = read(bodies.NewToken, body)
        account = set_or_none(request.account)
        token = access_keys.generate_token()
        new = NewToken(
            request.name,
            request.scope,
            self.store.hasher.digest(token),
            f"{access_keys.TOKEN_PREFIX}…{token[-4:]}",
            None if account is None else resource_id(account, "account"),
        )
        return token_shape(self.store.create_token(new), token)

    def list_tokens(self) -> shapes.Listing[shapes.AdminToken]:
        return shapes.Listing(data=[token_shape(t) for t in self.store.list_tokens()])

    def revoke_token(self, token_id: str) -> shapes.AdminToken:
        return token_shape(self.store.revoke_token(resource_id(token_id, "token")))

    def list_audit(
        self,
        *,
        cursor: str | None,
        limit: str | None,
        actor: str | None = None,
        action: str | None = None,
    ) -> shapes.Page[shapes.AuditRecord]:
        """The audit log, newest first; ``cursor`` is the ``seq`` a page ended before."""
        size = page_limit(limit, default=DEFAULT_PAGE_SIZE, maximum=MAX_AUDIT_PAGE)
        if cursor is not None and not (is_digits(cursor) and len(cursor) <= 18):
            raise InvalidParameter("cursor must be a next_cursor this API gave out", "cursor")
        actor = filter_text(actor, "actor", MAX_AUDIT_FILTER_CHARS)
        action = filter_text(action, "action", MAX_AUDIT_FILTER_CHARS)
        page = self.store.list_audit(None if cursor is None else int(cursor), size, actor, action)
        return page_shape(page, [audit_shape(r) for r in page.items])

    def list_keys(self, account_id: str) -> shapes.Listing[shapes.ApiKey]:
        keys = self.store.list_keys(resource_id(account_id, "account"))
        return shapes.Listing(data=[key_shape(k) for k in keys])

    def revoke_key(self, key_id: str, idem_key: str | None = None) -> shapes.ApiKey:
        key_id = resource_id(key_id, "key")
        idem = self._bodiless(idem_key, "revoke_key", key_id)
        return key_shape(self.store.revoke_key(key_id, idem))

    # ------------------------------------------------------------------ entries

    def post_entry(
        self, account_id: str, kind: EntryKind, body: RequestBody, idem_key: str | None
    ) -> shapes.PostedEntry:
        """Append a top-up, charge, refund or adjustment (``Idempotency-Key`` required)."""
        return posted_shape(self.post_entry_record(account_id, kind, body, idem_key))

    def post_entry_record(
        self, account_id: str, kind: EntryKind, body: RequestBody, idem_key: str | None
    ) -> PostedEntry:
        """:meth:`post_entry`, as the record (which says whether it was a replay)."""
        new, idem = self.entry_request(account_id, kind, body, idem_key)
        return self.store.append_entry(new, idem)

    def entry_request(
        self, account_id: str, kind: EntryKind, body: RequestBody, idem_key: str | None
    ) -> tuple[NewEntry, Idempotency]:
        """Validate an entry request (no I/O), ready for the store or a group commit."""
        account_id = resource_id(account_id, "account")
        model = bodies.NewRefund if kind is EntryKind.REFUND else bodies.NewEntry
        request, idem = self._read(
            model, body, idem_key, f"post_{kind.value}", account_id, required=True
        )
        assert idem is not None
        return new_entry(account_id, kind, request), idem

    # ------------------------------------------------------------------ holds

    def create_hold(
        self, account_id: str, body: RequestBody, idem_key: str | None
    ) -> shapes.HoldResult:
        """Reserve an amount until it is captured, voided or expires (key required)."""
        account_id = resource_id(account_id, "account")
        request, idem = self._read(
            bodies.NewHold, body, idem_key, "create_hold", account_id, required=True
        )
        assert idem is not None
        result = self.store.create_hold(new_hold(account_id, request), idem)
        return hold_result_shape(result)

    def capture_hold(
        self, hold_id: str, body: RequestBody, idem_key: str | None
    ) -> shapes.HoldResult:
        """Charge all of a hold (no ``amount``) or part of it; the rest is released."""
        hold_id = resource_id(hold_id, "hold")
        request, idem = self._read(
            bodies.CaptureHold, body, idem_key, "capture_hold", hold_id, required=True
        )
        assert idem is not None
        result = self.store.capture_hold(
            hold_id,
            minor(request.amount, "amount"),
            set_or_none(request.reference),
            metadata_of(request.metadata),
            idem,
        )
        return hold_result_shape(result)

    def void_hold(self, hold_id: str, body: RequestBody, idem_key: str | None) -> shapes.HoldResult:
        """Release a pending hold without charging anything."""
        hold_id = resource_id(hold_id, "hold")
        _, idem = self._read(bodies.VoidHold, body, idem_key, "void_hold", hold_id, required=True)
        assert idem is not None
        result = self.store.void_hold(hold_id, idem)
        return hold_result_shape(result)

    def get_hold(self, hold_id: str) -> shapes.Hold:
        hold = self.store.get_hold(resource_id(hold_id, "hold"))
        return hold_shape(hold, self.store.get_account(hold.account_id).scale)

    def list_holds(
        self,
        account_id: str,
        *,
        mode: str | None,
        status: str | None,
        cursor: str | None,
        limit: str | None,
    ) -> shapes.Page[shapes.Hold]:
        account_id = resource_id(account_id, "account")
        ledger_mode = parse_mode(mode)
        if status is not None and status not in {s.value for s in HoldStatus}:
            raise InvalidParameter("status must be pending, captured, voided or expired", "status")
        size = id_page_size(cursor, limit)
        account = self.store.get_account(account_id)
        page = self.store.list_holds(
            account_id, ledger_mode, HoldStatus(status) if status else None, cursor, size
        )
        return page_shape(page, [hold_shape(h, account.scale) for h in page.items])

    # ------------------------------------------------------------------ alerts

    def create_alert(
        self, account_id: str, body: RequestBody, idem_key: str | None = None
    ) -> shapes.Alert:
        """A threshold on a ledger's available amount: ``balance.low`` once below it,
        ``balance.recovered`` once above it plus ``hysteresis``."""
        account_id = resource_id(account_id, "account")
        request, idem = self._read(
            bodies.NewAlert, body, idem_key, "create_alert", account_id, required=False
        )
        below = minor(request.below, "below", allow_negative=True)
        assert below is not None
        hysteresis = minor(request.hysteresis, "hysteresis") or 0
        recharge = recharge_input(set_or_none(request.recharge), below)
        account = self.store.get_account(account_id)
        new = NewAlertRule(account_id, mode_of(request.mode), below, hysteresis, recharge)
        rule = self.store.create_alert_rule(new, MAX_ALERTS_PER_ACCOUNT, idem)
        return alert_shape(rule, account.scale)

    def recharge_failed(
        self, alert_id: str, body: RequestBody, idem_key: str | None = None
    ) -> shapes.Alert:
        """The payment system could not top up after a ``topup.requested``."""
        alert_id = resource_id(alert_id, "alert")
        request, idem = self._read(
            bodies.RechargeFailure, body, idem_key, "recharge_failed", alert_id, required=False
        )
        rule = self.store.record_recharge_failure(alert_id, set_or_none(request.reason), idem)
        return alert_shape(rule, self.store.get_account(rule.account_id).scale)

    def list_alerts(self, account_id: str) -> shapes.Listing[shapes.Alert]:
        account_id = resource_id(account_id, "account")
        scale = self.store.get_account(account_id).scale
        return shapes.Listing(
            data=[alert_shape(r, scale) for r in self.store.list_alert_rules(account_id)]
        )

    def delete_alert(self, alert_id: str, idem_key: str | None = None) -> shapes.Alert:
        alert_id = resource_id(alert_id, "alert")
        idem = self._bodiless(idem_key, "delete_alert", alert_id)
        rule = self.store.delete_alert_rule(alert_id, idem)
        return alert_shape(rule, self.store.get_account(rule.account_id).scale)

    def list_events(
        self, *, account_id: str | None, cursor: str | None, limit: str | None
    ) -> shapes.Page[dict[str, Any]]:
        """Events newest first: what happened, with the exact body webhooks carry."""
        if account_id is not None:
            account_id = resource_id(account_id, "account")
            self.store.get_account(account_id)
        size = id_page_size(cursor, limit)
        page = self.store.list_events(account_id, cursor, size)
        return page_shape(page, [event_json(e) for e in page.items])

    def recent_events(self, account_id: str, mode: str, count: int) -> list[dict[str, Any]]:
        """The ledger's ``count`` newest events, each with its deliveries (the dashboard's
        view; one read of events and one of their deliveries)."""
        events = self.store.list_events(account_id, None, count * 2)
        shown = [e for e in events.items if e.mode.value == mode][:count]
        deliveries = self.store.deliveries_of([e.id for e in shown])
        return [
            {**event_json(e), "deliveries": [render(delivery_shape(d)) for d in deliveries[e.id]]}
            for e in shown
        ]

    # ------------------------------------------------------------------ credentials

    def credential_digest(self, credential: str) -> bytes:
        """How a key or token is stored: its HMAC digest under the key secret."""
        return self.store.hasher.digest(credential)

    def key_by_digest(self, digest: bytes) -> ApiKey | None:
        """The live access key with this digest, if any."""
        return self.store.key_by_digest(digest)

    def token_by_digest(self, digest: bytes) -> AdminToken | None:
        """The live admin token with this digest, if any."""
        return self.store.token_by_digest(digest)

    # ------------------------------------------------------------------ webhooks

    def create_webhook(self, body: RequestBody, idem_key: str | None = None) -> shapes.Webhook:
        """Subscribe a URL to events; the answer holds the signing secret, this once (and
        an idempotent replay of it, the secret in force)."""
        request, idem = self._read(
            bodies.NewWebhook, body, idem_key, "create_webhook", "", required=False
        )
        url = request.url
        problem = target_problem(url)
        if problem is not None:
            raise InvalidParameter(problem, "url")
        if url.startswith("mailto:") and not self.mail_configured:
            raise InvalidParameter(
                "mailto: subscriptions need the server's BIRDBALANCE_SMTP_HOST and"
                " BIRDBALANCE_SMTP_FROM, which are not set",
                "url",
            )
        account = set_or_none(request.account)
        account_id = resource_id(account, "account") if account is not None else None
        events = event_types(set_or_none(request.events))
        webhook, secret = self.store.create_webhook(
            NewWebhook(url, account_id, events, new_secret()), MAX_WEBHOOKS, idem
        )
        return webhook_shape(webhook, secret)

    def list_webhooks(self) -> shapes.Listing[shapes.Webhook]:
        return shapes.Listing(data=[webhook_shape(w) for w in self.store.list_webhooks()])

    def rotate_webhook_secret(self, webhook_id: str, idem_key: str | None = None) -> shapes.Webhook:
        """A new secret in the Standard Webhooks format, shown once (and to an idempotent
        replay); the old one stops signing at once (a subscription made before them moves
        over this way)."""
        webhook_id = resource_id(webhook_id, "webhook")
        idem = self._bodiless(idem_key, "rotate_webhook_secret", webhook_id)
        webhook, secret = self.store.rotate_webhook_secret(webhook_id, new_secret(), idem)
        return webhook_shape(webhook, secret)

    def delete_webhook(self, webhook_id: str, idem_key: str | None = None) -> shapes.Webhook:
        webhook_id = resource_id(webhook_id, "webhook")
        idem = self._bodiless(idem_key, "delete_webhook", webhook_id)
        return webhook_shape(self.store.delete_webhook(webhook_id, idem))

    def list_deliveries(
        self,
        *,
        status: str | None,
        webhook_id: str | None,
        cursor: str | None,
        limit: str | None,
    ) -> shapes.Page[shapes.Delivery]:
        if status is not None and status not in DELIVERY_STATUSES:
            raise InvalidParameter("status must be pending, delivered or dead", "status")
        if webhook_id is not None:
            webhook_id = resource_id(webhook_id, "webhook")
        size = id_page_size(cursor, limit)
        page = self.store.list_deliveries(status, webhook_id, cursor, size)
        return page_shape(page, [delivery_shape(d) for d in page.items])

    def redeliver(self, delivery_id: str, idem_key: str | None = None) -> shapes.Delivery:
        """Send a delivery again (delivered or dead-lettered alike)."""
        delivery_id = resource_id(delivery_id, "delivery")
        idem = self._bodiless(idem_key, "redeliver", delivery_id)
        return delivery_shape(self.store.redeliver(delivery_id, idem))
