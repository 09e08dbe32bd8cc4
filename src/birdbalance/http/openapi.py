"""The OpenAPI 3.1 document served at ``/openapi.json``.

``/balance`` is described as in MessageBird's own OpenAPI file (same operation id,
security scheme and ``Balance`` schema), with the ``type`` values MessageBird's reference
page lists and the error responses its SDKs handle. The admin API is documented beside it.
"""

from __future__ import annotations

from typing import Any

from birdbalance._version import __version__
from birdbalance.daily import MAX_CHART_DAYS
from birdbalance.http.openapi_parts import (
    ADMIN,
    HOLD_STATUSES,
    ID,
    IDEMPOTENCY,
    LIMIT,
    MODE,
    array_of,
    component_schemas,
    error_responses,
    json_response,
    page_of,
    path_param,
    query_param,
    ref,
    webhook_operations,
)
from birdbalance.ledger import POSTED_KINDS, EntryKind
from birdbalance.records import DELIVERY_STATUSES
from birdbalance.service.inputs import (
    MAX_AUDIT_FILTER_CHARS,
)
from birdbalance.validation import (
    MAX_NAME_CHARS,
    MAX_REFERENCE_CHARS,
)


def openapi_document() -> dict[str, Any]:
    """The whole document, built fresh (cheap; served from memory).

    Every operation may answer 429 (rate limits, failed-authentication throttling), and
    every admin operation 403 (a read-only token asking to write).
    """
    document = _document()
    for operations in document["paths"].values():
        for operation in operations.values():
            extra = [429] + ([403] if operation.get("security") == ADMIN else [])
            operation["responses"].update(error_responses(*extra))
    return document


def _op(
    operation_id: str,
    tag: str,
    summary: str,
    ok: tuple[str, dict[str, Any], str],
    *,
    errors: tuple[int, ...],
    params: tuple[dict[str, Any], ...] = (),
    body: dict[str, Any] | None = None,
    body_required: bool = True,
    conflict: str | None = None,
    description: str | None = None,
    security: list[dict[str, list[str]]] = ADMIN,
) -> dict[str, Any]:
    """One operation: its success answer (``status, schema, text``; a whole response
    object when it has its own content types), its body and its error statuses."""
    status, schema, text = ok
    answer = schema if "content" in schema else json_response(schema, text)
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": security,
    }
    if description is not None:
        operation["description"] = description
    if params:
        operation["parameters"] = list(params)
    if body is not None:
        operation["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    responses = {status: answer}
    if conflict is not None:
        responses["409"] = json_response(ref("ErrorBody"), conflict)
    operation["responses"] = {**responses, **error_responses(*errors)}
    return operation


def _data(item: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"data": array_of(ref(item))}}


_ACCOUNT_ID = path_param("account_id")

_KEY_REQUIRED = {**IDEMPOTENCY, "required": True}

_SEQ_CURSOR = query_param("cursor", {"type": "string", "pattern": "^[0-9]{1,18}$"})

_ID_CURSOR = query_param("cursor", ID)

_MODE_QUERY = query_param("mode", MODE)

_TIME = {"type": "string", "format": "date-time"}
_AUDIT_FILTER = {"type": "string", "maxLength": MAX_AUDIT_FILTER_CHARS}
_REFERENCE_FILTER = {"type": "string", "maxLength": MAX_REFERENCE_CHARS}

_WRITE = (400, 401, 404, 409, 413, 422, 503)

_READ = (401, 404, 422)


def _operations() -> dict[str, dict[str, Any]]:
    """Every path and method, one table."""
    return {
        "/balance": {"get": _op(
            "getBalance", "Balance", "Get account balance",
            ("200", ref("Balance"), "Account balance"), errors=(401, 405, 500),
            description="Retrieves the current account balance, including the payment type,"
            " available amount, and currency.", security=[{"accessKey": []}])},
        "/v1/accounts": {
            "post": _op(
                "createAccount", "Accounts", "Create an account (both ledgers start at 0)",
                ("201", ref("Account"), "The account"), params=(IDEMPOTENCY,),
                body=ref("NewAccount"), errors=(400, 401, 409, 413, 422, 503)),
            "get": _op(
                "listAccounts", "Accounts", "List accounts in creation order",
                ("200", page_of("Account"), "A page of accounts"), errors=_READ,
                params=(LIMIT, _ID_CURSOR,
                        query_param("search", {"type": "string", "maxLength": MAX_NAME_CHARS}))),
        },
        "/v1/accounts/{account_id}": {"get": _op(
            "getAccount", "Accounts", "Get an account with its live and test balances",
            ("200", ref("Account"), "The account"), params=(_ACCOUNT_ID,), errors=(401, 404))},
        "/v1/accounts/{account_id}/keys": {
            "post": _op(
                "createKey", "Keys", "Create an access key; the secret is returned once",
                ("201", ref("ApiKey"), "The key, with `key` (the secret) once"),
                params=(_ACCOUNT_ID, IDEMPOTENCY), errors=_WRITE, body_required=False,
                body=ref("NewKey")),
            "get": _op(
                "listKeys", "Keys", "List an account's keys (never their secrets)",
                ("200", {"type": "object", "properties": {
                    "data": {"type": "array", "items": ref("ApiKey")}}}, "The keys"),
                params=(_ACCOUNT_ID,), errors=(401, 404)),
        },
        "/v1/keys/{key_id}": {"delete": _op(
            "revokeKey", "Keys", "Revoke a key (idempotent); it stops working at once",
            ("200", ref("ApiKey"), "The revoked key"),
            params=(path_param("key_id"), IDEMPOTENCY),
            errors=(401, 404, 503))},
        "/v1/keys/{key_id}/rotate": {"post": _op(
            "rotateKey", "Keys", "Replace a key: a new one for the same ledger, while the old"
            " one keeps working for `expires_in` seconds",
            ("201", ref("RotatedKey"), "The new key (its secret once)"),
            params=(path_param("key_id"), {**IDEMPOTENCY, "required": False}),
            errors=_WRITE, body_required=False, body=ref("RotateKey"))},
        "/v1/audit": {"get": _op(
            "listAudit", "Security", "The audit log of admin actions, newest first",
            ("200", page_of("AuditRecord"), "A page of audit records"), errors=(401, 422),
            params=(LIMIT, _SEQ_CURSOR,
                    query_param("actor", _AUDIT_FILTER), query_param("action", _AUDIT_FILTER)))},
        "/v1/accounts/{account_id}/entries": {"get": _op(
            "listEntries", "Ledger", "A ledger's entries, newest first",
            ("200", page_of("Entry"), "A page of entries"), errors=_READ,
            description="Narrowed by `kind`, `from`/`to` (created in [from, to)) and an exact"
            " `reference`; every filter is an index range, so a page costs the same on a"
            " ledger of any size.",
            params=(_ACCOUNT_ID, _MODE_QUERY, LIMIT, _SEQ_CURSOR,
                    query_param("kind", {"type": "string", "enum": [k.value for k in EntryKind]}),
                    query_param("from", _TIME), query_param("to", _TIME),
                    query_param("reference", _REFERENCE_FILTER)))},
        **{
            f"/v1/accounts/{{account_id}}/{kind.value}s": {"post": _entry_operation(kind)}
            for kind in POSTED_KINDS
        },
        "/v1/accounts/{account_id}/balance": {"get": _op(
            "getBalanceAt", "Ledger", "A ledger's balance now, or at a point in time",
            ("200", ref("BalanceAt"), "The balance at that moment"), errors=_READ,
            description="The balance after the ledger's last entry at or before `at` (without"
            " `at`: its last entry, the balance now), found by one index seek. Holds are not"
            " part of it.",
            params=(_ACCOUNT_ID, {"name": "at", "in": "query", "required": False,
                                  "description": "An RFC 3339 time; now if absent.",
                                  "schema": _TIME}, _MODE_QUERY))},
        "/v1/accounts/{account_id}/statement": {"get": _op(
            "getStatement", "Ledger", "A ledger over [from, to): opening, entries, closing,"
            " totals",
            ("200", {"description": "The statement", "content": {
                "application/json": {"schema": ref("Statement")},
                "text/csv": {"schema": {"type": "string"}}}}, "The statement"),
            errors=_READ,
            description="Opening balance + every entry's amount = closing balance, always"
            " (read in one snapshot). JSON pages the entries (`cursor`, `limit`); CSV"
            " (`format=csv` or `Accept: text/csv`) holds every entry of the range, then the"
            " closing balance and a total per kind. `to` defaults to now and never passes it.",
            params=(_ACCOUNT_ID,
                    {"name": "from", "in": "query", "required": True, "schema": _TIME},
                    query_param("to", _TIME), _MODE_QUERY,
                    query_param("format", {"type": "string", "enum": ["json", "csv"]}),
                    query_param("cursor", {"type": "string"}), LIMIT))},
        "/v1/accounts/{account_id}/usage": {"get": _op(
            "getUsageBy", "Ledger", "Usage over a range, by a metadata key",
            ("200", ref("UsageBreakdown"), "Usage per value of the key, largest first"),
            errors=_READ,
            description="Charges less refunds in [from, to) (to: now by default; at most 366"
            " days), grouped by the value each entry's own `metadata` gives `by` (null:"
            " entries without it). At most 1,000 groups (`truncated` says when there were"
            " more). `format=csv` (or `Accept: text/csv`) gives the same as CSV.",
            params=(_ACCOUNT_ID, _MODE_QUERY,
                    {"name": "by", "in": "query", "required": True,
                     "schema": {"type": "string", "minLength": 1, "maxLength": 40}},
                    {"name": "from", "in": "query", "required": True, "schema": _TIME},
                    query_param("to", _TIME),
                    query_param("format", {"type": "string", "enum": ["json", "csv"]})))},
        "/v1/accounts/{account_id}/forecast": {"get": _op(
            "getForecast", "Ledger", "When the balance runs out at the last 7 and 30 days'"
            " pace", ("200", ref("Forecast"), "The paces and their run-out days"),
            errors=_READ, params=(_ACCOUNT_ID, _MODE_QUERY),
            description="A pace is what the last `days` UTC days (today included) spent:"
            " usage (charges less refunds) and transfers out beyond those in, divided by"
            " `days`. At it, `spendable` (available, plus a postpaid credit limit) runs out"
            " `spendable * days // spent` days from today; `runs_out_on` is null when the"
            " pace spends nothing, past 100 years, or for a postpaid account without a"
            " limit.")},
        "/v1/accounts/{account_id}/daily": {"get": _op(
            "getDaily", "Ledger", "A ledger day by day (UTC): closing balance, usage, totals",
            ("200", ref("Daily"), "The days"), errors=_READ,
            description=f"The last `days` UTC days ending today (default 30, at most"
            f" {MAX_CHART_DAYS}), one item per day, days without entries included. `usage`"
            " is the day's charges less its refunds. Read from per-day totals kept in each"
            " entry's transaction, so it costs the same on any ledger size; each day's"
            " balance is the one before plus that day's totals.",
            params=(_ACCOUNT_ID, _MODE_QUERY, query_param(
                "days", {"type": "integer", "minimum": 1, "maximum": MAX_CHART_DAYS})))},
        "/v1/accounts/{account_id}/holds": {
            "post": _op(
                "createHold", "Holds", "Reserve an amount until it is captured, voided or"
                " expires", ("201", ref("HoldResult"), "The pending hold"),
                params=(_ACCOUNT_ID, _KEY_REQUIRED), body=ref("NewHold"), errors=_WRITE),
            "get": _op(
                "listHolds", "Holds", "A ledger's holds, newest first",
                ("200", page_of("Hold"), "A page of holds"), errors=_READ,
                params=(_ACCOUNT_ID, _MODE_QUERY,
                        query_param("status", {"type": "string", "enum": HOLD_STATUSES}),
                        LIMIT, _ID_CURSOR)),
        },
        "/v1/holds/{hold_id}": {"get": _op(
            "getHold", "Holds", "One hold", ("200", ref("Hold"), "The hold"),
            params=(path_param("hold_id"),), errors=(401, 404))},
        "/v1/holds/{hold_id}/capture": {"post": _hold_action(
            "captureHold",
            "Charge all of a pending hold (no amount) or part of it; the rest is released",
            "CaptureHold")},
        "/v1/holds/{hold_id}/void": {"post": _hold_action(
            "voidHold", "Release a pending hold without charging", "VoidHold")},
        "/v1/accounts/{account_id}/subaccounts": {"get": _op(
            "listSubaccounts", "Accounts", "An account's direct sub-accounts, with totals",
            ("200", ref("SubAccounts"), "A page of sub-accounts (by id) and the totals of all"),
            errors=_READ, params=(_ACCOUNT_ID, LIMIT, _ID_CURSOR),
            description="Each sub-account with its balances; `totals` sums the live ledgers"
            " of every direct sub-account, not only this page's.")},
        "/v1/accounts/{account_id}/spending-limit": {
            "put": _op(
                "setSpendingLimit", "Accounts", "Set a shared sub-account's spending limit",
                ("200", ref("Account"), "The sub-account"), params=(_ACCOUNT_ID, IDEMPOTENCY),
                body=ref("SpendingLimit"), errors=(400, 401, 403, 404, 413, 422, 503),
                description="At most `amount` of net usage (charges less refunds) per UTC"
                " `day`, `month` or `all` time, judged in each charge's transaction with the"
                " parent's floor. What the current period already used still counts."),
            "delete": _op(
                "removeSpendingLimit", "Accounts", "Remove a shared sub-account's spending"
                " limit (it then spends up to its parent's available amount)",
                ("200", ref("Account"), "The sub-account"), params=(_ACCOUNT_ID, IDEMPOTENCY),
                errors=(401, 403, 404, 409, 422, 503)),
        },
        "/v1/transfers": {
            "post": _op(
                "createTransfer", "Transfers", "Move an amount from one account's ledger to"
                " another's of the same asset and mode: both entries or neither",
                ("201", ref("TransferResult"), "The transfer and its two legs"),
                params=(_KEY_REQUIRED,), body=ref("NewTransfer"), errors=_WRITE,
                description="The source keeps to its floor (0 if prepaid, its credit limit if"
                " postpaid; code 25 past it). Two assets, or one account on both sides, get"
                " 422. A transfer is never edited: a transfer back reverses it."),
            "get": _op(
                "listTransfers", "Transfers", "Transfers, newest first",
                ("200", page_of("Transfer"), "A page of transfers"), errors=_READ,
                description="All of them, or with `account` those from or to that account.",
                params=(query_param("account", ID), LIMIT, _ID_CURSOR)),
        },
        "/v1/transfers/{transfer_id}": {"get": _op(
            "getTransfer", "Transfers", "One transfer and its two legs",
            ("200", ref("TransferResult"), "The transfer"),
            params=(path_param("transfer_id"),), errors=(401, 404))},
        "/v1/bulk": {"post": _op(
            "postBulk", "Ledger", "Post up to 1,000 ledger operations (top-ups, charges,"
            " refunds, adjustments, holds, captures, voids) in one transaction",
            ("200", ref("BulkAnswer"), "Each operation's result, in order, and the ledgers"
             " the request names as it leaves them"),
            params=({**IDEMPOTENCY, "description": "Required unless dry_run: a replay answers"
                     " the same bytes"},),
            body=ref("NewBulk"), conflict="The Idempotency-Key was used with another request",
            errors=(400, 401, 413, 422, 503),
            description="Each operation carries its own idempotency_key and gets its own"
            " result, judged exactly as its single write would be, on the ledgers as the"
            " operations before it left them. linked: true ties an operation to the next;"
            " a linked group succeeds or fails as one. dry_run answers the same without"
            " writing anything.")},
        "/v1/accounts/{account_id}/alerts": {
            "post": _op(
                "createAlert", "Alerts", "A low-balance threshold on a ledger's available"
                " amount", ("201", ref("Alert"), "The rule"), params=(_ACCOUNT_ID, IDEMPOTENCY),
                body=ref("NewAlert"), errors=_WRITE),
            "get": _op(
                "listAlerts", "Alerts", "An account's alert rules",
                ("200", _data("Alert"), "The rules"), params=(_ACCOUNT_ID,), errors=(401, 404)),
        },
        "/v1/alerts/{alert_id}": {"delete": _op(
            "deleteAlert", "Alerts", "Stop an alert rule (its past events remain)",
            ("200", ref("Alert"), "The rule"), params=(path_param("alert_id"), IDEMPOTENCY),
            errors=(401, 404, 409, 503))},
        "/v1/alerts/{alert_id}/recharge-failures": {"post": _op(
            "recordRechargeFailure", "Alerts", "A top-up asked for by topup.requested failed:"
            " ask again, or disable the recharge (recharge.disabled) at max_failures",
            ("200", ref("Alert"), "The rule, its failures counted"),
            params=(path_param("alert_id"), IDEMPOTENCY),
            conflict="No recharge, or it is disabled, or the Idempotency-Key was used with"
            " another request",
            errors=(400, 401, 404, 413, 422, 503), body_required=False,
            body=ref("RechargeFailure"))},
        "/v1/events": {"get": _op(
            "listEvents", "Alerts", "Events, newest first, as their webhooks carry them",
            ("200", page_of("Event"), "A page of events"), errors=_READ,
            params=(query_param("account", ID), LIMIT, _ID_CURSOR))},
        "/v1/webhooks": {
            "post": _op(
                "createWebhook", "Alerts", "Subscribe a URL to events (the answer holds the"
                " secret, once)", ("201", ref("Webhook"), "The subscription and its secret"),
                params=(IDEMPOTENCY,), body=ref("NewWebhook"), errors=_WRITE),
            "get": _op(
                "listWebhooks", "Alerts", "Every subscription (never its secret)",
                ("200", _data("Webhook"), "The subscriptions"), errors=(401,)),
        },
        "/v1/webhooks/{webhook_id}": {"delete": _op(
            "deleteWebhook", "Alerts", "Stop a subscription; its pending deliveries are"
            " dead-lettered", ("200", ref("Webhook"), "The subscription"),
            params=(path_param("webhook_id"), IDEMPOTENCY), errors=(401, 404, 409, 503))},
        "/v1/webhooks/{webhook_id}/rotate-secret": {"post": _op(
            "rotateWebhookSecret", "Alerts", "A new signing secret in the Standard Webhooks"
            " format (shown once); the old one stops signing at once",
            ("200", ref("Webhook"), "The subscription, with its new secret"),
            params=(path_param("webhook_id"), IDEMPOTENCY), errors=(401, 403, 404, 409, 503))},
        "/v1/deliveries": {"get": _op(
            "listDeliveries", "Alerts", "Webhook deliveries, newest first",
            ("200", page_of("Delivery"), "A page of deliveries"), errors=_READ,
            params=(query_param("status", {"type": "string", "enum": list(DELIVERY_STATUSES)}),
                    query_param("webhook", ID), LIMIT, _ID_CURSOR))},
        "/v1/deliveries/{delivery_id}/redeliver": {"post": _op(
            "redeliver", "Alerts", "Send a delivery again, with a fresh set of attempts",
            ("200", ref("Delivery"), "The delivery, pending again"),
            params=(path_param("delivery_id"), IDEMPOTENCY),
            conflict="Its webhook was deleted, or the Idempotency-Key was used with another"
            " request",
            errors=(401, 404, 503))},
        "/healthz": {"get": _probe("healthz", "The process is up (says nothing of the database)")},
        "/readyz": {"get": _probe("readyz", "The database answers and its schema is current")},
        "/metrics": {"get": _op(
            "metrics", "Operations", "Prometheus metrics of this process (docs/monitoring.md)",
            ("200", {"description": "The Prometheus text format, version 0.0.4",
                     "content": {"text/plain": {"schema": {"type": "string"}}}}, ""),
            errors=(401,))},
    }  # fmt: skip


_ENTRY_SUMMARIES = {
    EntryKind.TOPUP: "Add funds (prepaid) or record a payment (postpaid)",
    EntryKind.CHARGE: "Charge usage; prepaid refuses to go below zero (code 25)",
    EntryKind.REFUND: "Refund all or part of a charge",
    EntryKind.ADJUSTMENT: "A signed correction (never an edit of an entry)",
}


def _entry_operation(kind: EntryKind) -> dict[str, Any]:
    body = ref("NewRefund" if kind is EntryKind.REFUND else "NewEntry")
    return _op(
        f"create{kind.value.capitalize()}",
        "Ledger",
        _ENTRY_SUMMARIES[kind],
        ("201", ref("PostedEntry"), "The entry and the resulting balance"),
        params=(_ACCOUNT_ID, _KEY_REQUIRED),
        body=body,
        errors=_WRITE,
    )


def _hold_action(operation_id: str, summary: str, body: str) -> dict[str, Any]:
    return _op(
        operation_id,
        "Holds",
        summary,
        ("200", ref("HoldResult"), "The hold (and, for a capture, its charge)"),
        params=(path_param("hold_id"), _KEY_REQUIRED),
        body=ref(body),
        body_required=False,
        conflict="The hold is no longer pending, or key reuse",
        errors=(400, 401, 404, 413, 422, 503),
    )


def _probe(name: str, summary: str) -> dict[str, Any]:
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    return _op(name, "Operations", summary, ("200", status, "Up"), errors=(503,), security=[])


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "birdbalance: MessageBird Balance API and admin API",
            "version": __version__,
            "description": "GET /balance is wire-compatible with MessageBird's Balance API."
            " The admin API under /v1/ manages accounts, access keys and the ledger.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {
                "name": "Balance",
                "description": "Operations for retrieving account balance information.",
            },
            {"name": "Accounts", "description": "Accounts, sub-accounts and spending limits."},
            {"name": "Keys", "description": "Access keys: made, listed, rotated, revoked."},
            {
                "name": "Ledger",
                "description": "Entries, bulk posting, statements, days, forecasts, usage.",
            },
            {"name": "Holds", "description": "Amounts reserved until captured or voided."},
            {"name": "Transfers", "description": "Money moved between two ledgers."},
            {"name": "Alerts", "description": "Alert rules, events, webhooks, deliveries."},
            {"name": "Security", "description": "The audit log of admin actions."},
            {"name": "Operations", "description": "Liveness, readiness, metrics, this document."},
        ],
        "paths": _operations(),
        "webhooks": webhook_operations(),
        "components": {
            "securitySchemes": {
                "accessKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "Access key authentication in the form of "
                    "'AccessKey {accessKey}'.",
                },
                "adminToken": {"type": "http", "scheme": "bearer"},
            },
            "schemas": component_schemas(),
        },
    }
