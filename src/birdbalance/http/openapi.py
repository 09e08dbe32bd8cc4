"""The OpenAPI 3.1 document served at ``/openapi.json``.

``/balance`` is described as in MessageBird's own OpenAPI file (same operation id,
security scheme and ``Balance`` schema), with the ``type`` values MessageBird's reference
page lists and the error responses its SDKs handle. The admin API is documented beside it.
"""

from __future__ import annotations

from typing import Any

from birdbalance._version import __version__
from birdbalance.alerts import EventType


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Bad request (malformed JSON)",
        401: "Unauthorized",
        403: "The admin token is read-only (code 2)",
        404: "Not found",
        405: "Method not allowed",
        409: "Idempotency-Key reused with a different request",
        413: "Request body too large",
        422: "Missing or invalid parameter, or not enough balance (code 25)",
        429: "Rate limited (code 29); Retry-After says when to try again",
        500: "Internal error (code 99)",
        503: "Busy, try again",
    }
    return {str(s): _json(_ref("Errors"), text[s]) for s in statuses}


_AMOUNT = {
    "type": "string",
    "pattern": r"^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$",
    "description": "Exact decimal amount in major units, at most 6 decimals. "
    "JSON numbers are accepted on input.",
    "examples": ["9.2"],
}
_ID = {"type": "string", "pattern": "^[a-z]{3}_[0-9A-Z]{26}$"}
_METADATA = {
    "type": "object",
    "maxProperties": 50,
    "additionalProperties": {"type": "string", "maxLength": 500},
}
_MODE = {"type": "string", "enum": ["live", "test"], "default": "live"}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Same key and same body returns the original result; a different body is 409.",
}
_ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _entry_operation(kind: str, summary: str, extra: dict[str, Any]) -> dict[str, Any]:
    properties = {
        "amount": _AMOUNT,
        "mode": _MODE,
        "reference": {"type": "string", "minLength": 1, "maxLength": 255},
        "metadata": _METADATA,
        **extra,
    }
    required = ["amount", *(["charge"] if "charge" in extra else [])]
    return {
        "post": {
            "operationId": f"create{kind.capitalize()}",
            "summary": summary,
            "tags": ["Ledger"],
            "security": _ADMIN,
            "parameters": [_path_param("account_id"), {**_IDEMPOTENCY, "required": True}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": properties,
                            "required": required,
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "201": _json(_ref("PostedEntry"), "The entry and the resulting balance"),
                **_errors(400, 401, 404, 409, 413, 422, 503),
            },
        }
    }


_HOLD_STATUSES = ["pending", "captured", "voided", "expired"]
_EVENT_TYPES = [t.value for t in EventType]
_REFERENCE = {"type": "string", "minLength": 1, "maxLength": 255}


def _hold_action(operation_id: str, summary: str, properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["Holds"],
            "security": _ADMIN,
            "parameters": [_path_param("hold_id"), {**_IDEMPOTENCY, "required": True}],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": schema}},
            },
            "responses": {
                "200": _json(_ref("HoldResult"), "The hold (and, for a capture, its charge)"),
                "409": _json(_ref("Errors"), "The hold is no longer pending, or key reuse"),
                **_errors(400, 401, 404, 413, 422, 503),
            },
        }
    }


def _probe(name: str, summary: str) -> dict[str, Any]:
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    return {
        "get": {
            "operationId": name,
            "summary": summary,
            "tags": ["Operations"],
            "security": [],
            "responses": {"200": _json(status, "Up"), **_errors(503)},
        }
    }


def openapi_document() -> dict[str, Any]:
    """The whole document, built fresh (cheap; served from memory).

    Every operation may answer 429 (rate limits, failed-authentication throttling), and
    every admin operation 403 (a read-only token asking to write).
    """
    document = _document()
    for operations in document["paths"].values():
        for operation in operations.values():
            extra = [429] + ([403] if operation.get("security") == _ADMIN else [])
            operation["responses"].update(_errors(*extra))
    return document


def _document() -> dict[str, Any]:
    balance_get = {
        "operationId": "getBalance",
        "summary": "Get account balance",
        "description": "Retrieves the current account balance, including the payment type,"
        " available amount, and currency.",
        "tags": ["Balance"],
        "security": [{"accessKey": []}],
        "responses": {
            "200": _json(_ref("Balance"), "Account balance"),
            **_errors(401, 405, 500),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "birdbalance: MessageBird Balance API and admin API",
            "version": __version__,
            "description": "GET /balance is wire-compatible with MessageBird's Balance API."
            " The admin API under /v1/ manages accounts, access keys and the ledger.",
        },
        "servers": [{"url": "/"}],
        "tags": [
            {
                "name": "Balance",
                "description": "Operations for retrieving account balance information.",
            },
            {"name": "Accounts"},
            {"name": "Keys"},
            {"name": "Ledger"},
            {"name": "Holds"},
            {"name": "Alerts"},
            {"name": "Operations"},
        ],
        "paths": {
            "/balance": {"get": balance_get},
            "/v1/accounts": {
                "post": {
                    "operationId": "createAccount",
                    "summary": "Create an account (both ledgers start at 0)",
                    "tags": ["Accounts"],
                    "security": _ADMIN,
                    "parameters": [_IDEMPOTENCY],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewAccount")}},
                    },
                    "responses": {
                        "201": _json(_ref("Account"), "The account"),
                        **_errors(400, 401, 409, 413, 422, 503),
                    },
                },
                "get": {
                    "operationId": "listAccounts",
                    "summary": "List accounts in creation order",
                    "tags": ["Accounts"],
                    "security": _ADMIN,
                    "parameters": [
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                        _query("cursor", _ID),
                        _query("search", {"type": "string", "maxLength": 255}),
                    ],
                    "responses": {
                        "200": _json(_page("Account"), "A page of accounts"),
                        **_errors(401, 404, 422),
                    },
                },
            },
            "/v1/accounts/{account_id}": {
                "get": {
                    "operationId": "getAccount",
                    "summary": "Get an account with its live and test balances",
                    "tags": ["Accounts"],
                    "security": _ADMIN,
                    "parameters": [_path_param("account_id")],
                    "responses": {
                        "200": _json(_ref("Account"), "The account"),
                        **_errors(401, 404),
                    },
                }
            },
            "/v1/accounts/{account_id}/keys": {
                "post": {
                    "operationId": "createKey",
                    "summary": "Create an access key; the secret is returned once",
                    "tags": ["Keys"],
                    "security": _ADMIN,
                    "parameters": [_path_param("account_id"), _IDEMPOTENCY],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"mode": _MODE},
                                    "additionalProperties": False,
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json(_ref("ApiKey"), "The key, with `key` (the secret) once"),
                        **_errors(400, 401, 404, 409, 413, 422, 503),
                    },
                },
                "get": {
                    "operationId": "listKeys",
                    "summary": "List an account's keys (never their secrets)",
                    "tags": ["Keys"],
                    "security": _ADMIN,
                    "parameters": [_path_param("account_id")],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"data": {"type": "array", "items": _ref("ApiKey")}},
                            },
                            "The keys",
                        ),
                        **_errors(401, 404),
                    },
                },
            },
            "/v1/keys/{key_id}": {
                "delete": {
                    "operationId": "revokeKey",
                    "summary": "Revoke a key (idempotent); it stops working at once",
                    "tags": ["Keys"],
                    "security": _ADMIN,
                    "parameters": [_path_param("key_id")],
                    "responses": {
                        "200": _json(_ref("ApiKey"), "The revoked key"),
                        **_errors(401, 404, 503),
                    },
                }
            },
            "/v1/keys/{key_id}/rotate": {
                "post": {
                    "operationId": "rotateKey",
                    "summary": "Replace a key: a new one for the same ledger, while the old"
                    " one keeps working for `expires_in` seconds",
                    "tags": ["Keys"],
                    "security": _ADMIN,
                    "parameters": [_path_param("key_id"), {**_IDEMPOTENCY, "required": False}],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "expires_in": {
                                            "type": "integer",
                                            "minimum": 0,
                                            "maximum": 2592000,
                                            "default": 86400,
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json(_ref("RotatedKey"), "The new key (its secret once)"),
                        **_errors(400, 401, 404, 409, 413, 422, 503),
                    },
                }
            },
            "/v1/audit": {
                "get": {
                    "operationId": "listAudit",
                    "summary": "The audit log of admin actions, newest first",
                    "tags": ["Security"],
                    "security": _ADMIN,
                    "parameters": [
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                        _query("cursor", {"type": "string", "pattern": "^[0-9]{1,18}$"}),
                        _query("actor", {"type": "string", "maxLength": 255}),
                        _query("action", {"type": "string", "maxLength": 255}),
                    ],
                    "responses": {
                        "200": _json(_page("AuditRecord"), "A page of audit records"),
                        **_errors(401, 422),
                    },
                }
            },
            "/v1/accounts/{account_id}/entries": {
                "get": {
                    "operationId": "listEntries",
                    "summary": "A ledger's entries, newest first",
                    "description": "Narrowed by `kind`, `from`/`to` (created in [from, to))"
                    " and an exact `reference`; every filter is an index range, so a page"
                    " costs the same on a ledger of any size.",
                    "tags": ["Ledger"],
                    "security": _ADMIN,
                    "parameters": [
                        _path_param("account_id"),
                        _query("mode", _MODE),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                        _query("cursor", {"type": "string", "pattern": "^[0-9]{1,18}$"}),
                        _query(
                            "kind",
                            {"type": "string", "enum": ["topup", "charge", "refund", "adjustment"]},
                        ),
                        _query("from", {"type": "string", "format": "date-time"}),
                        _query("to", {"type": "string", "format": "date-time"}),
                        _query("reference", {"type": "string", "maxLength": 255}),
                    ],
                    "responses": {
                        "200": _json(_page("Entry"), "A page of entries"),
                        **_errors(401, 404, 422),
                    },
                }
            },
            "/v1/accounts/{account_id}/topups": _entry_operation(
                "topup", "Add funds (prepaid) or record a payment (postpaid)", {}
            ),
            "/v1/accounts/{account_id}/charges": _entry_operation(
                "charge", "Charge usage; prepaid refuses to go below zero (code 25)", {}
            ),
            "/v1/accounts/{account_id}/refunds": _entry_operation(
                "refund", "Refund all or part of a charge", {"charge": _ID}
            ),
            "/v1/accounts/{account_id}/adjustments": _entry_operation(
                "adjustment", "A signed correction (never an edit of an entry)", {}
            ),
            "/v1/accounts/{account_id}/balance": {
                "get": {
                    "operationId": "getBalanceAt",
                    "summary": "A ledger's balance at a point in time",
                    "description": "The balance after the ledger's last entry at or before"
                    " `at`, found by one index seek. Holds are not part of it.",
                    "tags": ["Ledger"],
                    "security": _ADMIN,
                    "parameters": [
                        _path_param("account_id"),
                        {
                            "name": "at",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "format": "date-time"},
                        },
                        _query("mode", _MODE),
                    ],
                    "responses": {
                        "200": _json(_ref("BalanceAt"), "The balance at that moment"),
                        **_errors(401, 404, 422),
                    },
                }
            },
            "/v1/accounts/{account_id}/statement": {
                "get": {
                    "operationId": "getStatement",
                    "summary": "A ledger over [from, to): opening, entries, closing, totals",
                    "description": "Opening balance + every entry's amount = closing balance,"
                    " always (read in one snapshot). JSON pages the entries (`cursor`,"
                    " `limit`); CSV (`format=csv` or `Accept: text/csv`) holds every entry"
                    " of the range, then the closing balance and a total per kind. `to`"
                    " defaults to now and never passes it.",
                    "tags": ["Ledger"],
                    "security": _ADMIN,
                    "parameters": [
                        _path_param("account_id"),
                        {
                            "name": "from",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "format": "date-time"},
                        },
                        _query("to", {"type": "string", "format": "date-time"}),
                        _query("mode", _MODE),
                        _query("format", {"type": "string", "enum": ["json", "csv"]}),
                        _query("cursor", {"type": "string"}),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                    ],
                    "responses": {
                        "200": {
                            "description": "The statement",
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        **_errors(401, 404, 422),
                    },
                }
            },
            "/v1/accounts/{account_id}/daily": {
                "get": {
                    "operationId": "getDaily",
                    "summary": "A ledger day by day (UTC): closing balance, usage, totals",
                    "description": "The last `days` UTC days ending today (default 30, at"
                    " most 366), one item per day, days without entries included. `usage`"
                    " is the day's charges less its refunds. Read from per-day totals kept"
                    " in each entry's transaction, so it costs the same on any ledger size;"
                    " each day's balance is the one before plus that day's totals.",
                    "tags": ["Ledger"],
                    "security": _ADMIN,
                    "parameters": [
                        _path_param("account_id"),
                        _query("mode", _MODE),
                        _query("days", {"type": "integer", "minimum": 1, "maximum": 366}),
                    ],
                    "responses": {
                        "200": _json(_ref("Daily"), "The days"),
                        **_errors(401, 404, 422),
                    },
                }
            },
            "/v1/accounts/{account_id}/holds": {
                "post": {
                    "operationId": "createHold",
                    "summary": "Reserve an amount until it is captured, voided or expires",
                    "tags": ["Holds"],
                    "security": _ADMIN,
                    "parameters": [_path_param("account_id"), {**_IDEMPOTENCY, "required": True}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewHold")}},
                    },
                    "responses": {
                        "201": _json(_ref("HoldResult"), "The pending hold"),
                        **_errors(400, 401, 404, 409, 413, 422, 503),
                    },
                },
                "get": {
                    "operationId": "listHolds",
                    "summary": "A ledger's holds, newest first",
                    "tags": ["Holds"],
                    "security": _ADMIN,
                    "parameters": [
                        _path_param("account_id"),
                        _query("mode", _MODE),
                        _query("status", {"type": "string", "enum": _HOLD_STATUSES}),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                        _query("cursor", _ID),
                    ],
                    "responses": {
                        "200": _json(_page("Hold"), "A page of holds"),
                        **_errors(401, 404, 422),
                    },
                },
            },
            "/v1/holds/{hold_id}": {
                "get": {
                    "operationId": "getHold",
                    "summary": "One hold",
                    "tags": ["Holds"],
                    "security": _ADMIN,
                    "parameters": [_path_param("hold_id")],
                    "responses": {"200": _json(_ref("Hold"), "The hold"), **_errors(401, 404)},
                }
            },
            "/v1/holds/{hold_id}/capture": _hold_action(
                "captureHold",
                "Charge all of a pending hold (no amount) or part of it; the rest is released",
                {"amount": _AMOUNT, "reference": _REFERENCE, "metadata": _METADATA},
            ),
            "/v1/holds/{hold_id}/void": _hold_action(
                "voidHold", "Release a pending hold without charging", {}
            ),
            "/v1/accounts/{account_id}/alerts": {
                "post": {
                    "operationId": "createAlert",
                    "summary": "A low-balance threshold on a ledger's available amount",
                    "tags": ["Alerts"],
                    "security": _ADMIN,
                    "parameters": [_path_param("account_id")],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewAlert")}},
                    },
                    "responses": {
                        "201": _json(_ref("Alert"), "The rule"),
                        **_errors(400, 401, 404, 413, 422, 503),
                    },
                },
                "get": {
                    "operationId": "listAlerts",
                    "summary": "An account's alert rules",
                    "tags": ["Alerts"],
                    "security": _ADMIN,
                    "parameters": [_path_param("account_id")],
                    "responses": {
                        "200": _json(
                            {"type": "object", "properties": {"data": _list(_ref("Alert"))}},
                            "The rules",
                        ),
                        **_errors(401, 404),
                    },
                },
            },
            "/v1/alerts/{alert_id}": {
                "delete": {
                    "operationId": "deleteAlert",
                    "summary": "Stop an alert rule (its past events remain)",
                    "tags": ["Alerts"],
                    "security": _ADMIN,
                    "parameters": [_path_param("alert_id")],
                    "responses": {"200": _json(_ref("Alert"), "The rule"), **_errors(401, 404)},
                }
            },
            "/v1/alerts/{alert_id}/recharge-failures": {
                "post": {
                    "operationId": "recordRechargeFailure",
                    "summary": "A top-up asked for by topup.requested failed: ask again, or"
                    " disable the recharge (recharge.disabled) at max_failures",
                    "tags": ["Alerts"],
                    "security": _ADMIN,
                    "parameters": [_path_param("alert_id")],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"reason": {"type": "string", "maxLength": 500}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(_ref("Alert"), "The rule, its failures counted"),
                        "409": _json(_ref("Errors"), "No recharge, or it is disabled"),
                        **_errors(400, 401, 404, 413, 422, 503),
                    },
                }
            },
            "/v1/events": {
                "get": {
                    "operationId": "listEvents",
                    "summary": "Events, newest first, as their webhooks carry them",
                    "tags": ["Alerts"],
                    "security": _ADMIN,
                    "parameters": [
                        _query("account", _ID),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                        _query("cursor", _ID),
                    ],
                    "responses": {
                        "200": _json(_page("Event"), "A page of events"),
                        **_errors(401, 404, 422),
                    },
                }
            },
            "/v1/webhooks": {
                "post": {
                    "operationId": "createWebhook",
                    "summary": "Subscribe a URL to events (the answer holds the secret, once)",
                    "tags": ["Alerts"],
                    "security": _ADMIN,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewWebhook")}},
                    },
                    "responses": {
                        "201": _json(_ref("Webhook"), "The subscription and its secret"),
                        **_errors(400, 401, 404, 413, 422, 503),
                    },
                },
                "get": {
                    "operationId": "listWebhooks",
                    "summary": "Every subscription (never its secret)",
                    "tags": ["Alerts"],
                    "security": _ADMIN,
                    "responses": {
                        "200": _json(
                            {"type": "object", "properties": {"data": _list(_ref("Webhook"))}},
                            "The subscriptions",
                        ),
                        **_errors(401),
                    },
                },
            },
            "/v1/webhooks/{webhook_id}": {
                "delete": {
                    "operationId": "deleteWebhook",
                    "summary": "Stop a subscription; its pending deliveries are dead-lettered",
                    "tags": ["Alerts"],
                    "security": _ADMIN,
                    "parameters": [_path_param("webhook_id")],
                    "responses": {
                        "200": _json(_ref("Webhook"), "The subscription"),
                        **_errors(401, 404),
                    },
                }
            },
            "/v1/deliveries": {
                "get": {
                    "operationId": "listDeliveries",
                    "summary": "Webhook deliveries, newest first",
                    "tags": ["Alerts"],
                    "security": _ADMIN,
                    "parameters": [
                        _query(
                            "status", {"type": "string", "enum": ["pending", "delivered", "dead"]}
                        ),
                        _query("webhook", _ID),
                        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                        _query("cursor", _ID),
                    ],
                    "responses": {
                        "200": _json(_page("Delivery"), "A page of deliveries"),
                        **_errors(401, 404, 422),
                    },
                }
            },
            "/v1/deliveries/{delivery_id}/redeliver": {
                "post": {
                    "operationId": "redeliver",
                    "summary": "Send a delivery again, with a fresh set of attempts",
                    "tags": ["Alerts"],
                    "security": _ADMIN,
                    "parameters": [_path_param("delivery_id")],
                    "responses": {
                        "200": _json(_ref("Delivery"), "The delivery, pending again"),
                        "409": _json(_ref("Errors"), "Its webhook was deleted"),
                        **_errors(401, 404),
                    },
                }
            },
            "/healthz": _probe("healthz", "The process is up (says nothing of the database)"),
            "/readyz": _probe("readyz", "The database answers and its schema is current"),
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics of this process (docs/monitoring.md)",
                    "tags": ["Operations"],
                    "security": _ADMIN,
                    "responses": {
                        "200": {
                            "description": "The Prometheus text format, version 0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors(401),
                    },
                }
            },
        },
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
            "schemas": _schemas(),
        },
    }


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data", "next_cursor", "has_more"],
        "properties": {
            "data": {"type": "array", "items": _ref(item)},
            "next_cursor": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"},
        },
    }


def _schemas() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    ledger = {
        "type": "object",
        "properties": {
            "amount": {**_AMOUNT, "description": "The ledger's balance."},
            "pending": {**_AMOUNT, "description": "What pending holds reserve of it."},
            "available": {**_AMOUNT, "description": "amount - pending; what /balance shows."},
            "entries": {"type": "integer"},
        },
    }
    timestamp = {"type": "string", "format": "date-time"}
    hold = {
        "type": "object",
        "properties": {
            "id": _ID,
            "account_id": _ID,
            "mode": _MODE,
            "amount": _AMOUNT,
            "status": {"type": "string", "enum": _HOLD_STATUSES},
            "captured": _AMOUNT,
            "expires_at": timestamp,
            "reference": nullable_text,
            "metadata": _METADATA,
            "created_at": timestamp,
            "resolved_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    entry = {
        "type": "object",
        "properties": {
            "id": _ID,
            "account_id": _ID,
            "mode": _MODE,
            "seq": {"type": "integer", "minimum": 1},
            "kind": {"type": "string", "enum": ["topup", "charge", "refund", "adjustment"]},
            "amount": _AMOUNT,
            "balance_after": _AMOUNT,
            "refund_of": nullable_text,
            "reference": nullable_text,
            "metadata": _METADATA,
            "created_at": {"type": "string", "format": "date-time"},
            "hold": {**nullable_text, "description": "The hold a capture's charge settles."},
        },
    }
    return {
        "Hold": hold,
        "NewWebhook": {
            "type": "object",
            "required": ["url"],
            "additionalProperties": False,
            "properties": {
                "url": {"type": "string", "format": "uri", "maxLength": 2048},
                "account": {**_ID, "description": "Only this account's events (default all)."},
                "events": {
                    "type": "array",
                    "items": {"type": "string", "enum": _EVENT_TYPES},
                    "description": "Only these types (default all).",
                },
            },
        },
        "Webhook": {
            "type": "object",
            "properties": {
                "id": _ID,
                "url": {"type": "string"},
                "account_id": {"type": ["string", "null"]},
                "events": {"type": "array", "items": {"type": "string"}},
                "secret": {"type": "string", "description": "Only in the creating response."},
                "created_at": timestamp,
            },
        },
        "Delivery": {
            "type": "object",
            "properties": {
                "id": _ID,
                "event_id": _ID,
                "webhook_id": _ID,
                "status": {"type": "string", "enum": ["pending", "delivered", "dead"]},
                "attempts": {"type": "integer"},
                "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
                "last_status": {"type": ["integer", "null"]},
                "last_error": {"type": ["string", "null"]},
                "created_at": timestamp,
                "delivered_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "Recharge": {
            "type": ["object", "null"],
            "description": "Auto-recharge: topup.requested when the rule goes low, for a"
            " fixed amount or up to a level; disabled after max_failures failures in a row.",
            "additionalProperties": False,
            "properties": {
                "amount": _AMOUNT,
                "up_to": _AMOUNT,
                "max_failures": {"type": "integer", "minimum": 1, "maximum": 100},
                "failures": {"type": "integer", "readOnly": True},
                "disabled_at": {**timestamp, "readOnly": True},
            },
        },
        "NewAlert": {
            "type": "object",
            "required": ["below"],
            "additionalProperties": False,
            "properties": {
                "below": {**_AMOUNT, "description": "balance.low fires once below this."},
                "hysteresis": {
                    **_AMOUNT,
                    "description": "balance.recovered fires once above below + hysteresis.",
                },
                "mode": _MODE,
                "recharge": _ref("Recharge"),
            },
        },
        "Alert": {
            "type": "object",
            "properties": {
                "id": _ID,
                "account_id": _ID,
                "mode": _MODE,
                "below": _AMOUNT,
                "hysteresis": _AMOUNT,
                "state": {"type": "string", "enum": ["ok", "low"]},
                "recharge": _ref("Recharge"),
                "created_at": timestamp,
            },
        },
        "Event": {
            "type": "object",
            "required": ["id", "type", "created_at", "data"],
            "properties": {
                "id": _ID,
                "type": {"type": "string", "enum": _EVENT_TYPES},
                "created_at": timestamp,
                "data": {
                    "type": "object",
                    "properties": {
                        "account_id": _ID,
                        "mode": _MODE,
                        "payment": {"type": "string"},
                        "type": {"type": "string"},
                        "available": _AMOUNT,
                        "balance": _AMOUNT,
                        "pending": _AMOUNT,
                        "threshold": _AMOUNT,
                        "alert_id": _ID,
                        "credit_limit": _AMOUNT,
                        "cause": {"type": "object"},
                    },
                },
            },
        },
        "NewHold": {
            "type": "object",
            "required": ["amount"],
            "additionalProperties": False,
            "properties": {
                "amount": _AMOUNT,
                "expires_in": {
                    "type": ["integer", "string"],
                    "description": "Seconds until the hold expires, 1 to 2592000 (default 86400).",
                },
                "mode": _MODE,
                "reference": _REFERENCE,
                "metadata": _METADATA,
            },
        },
        "HoldResult": {
            "type": "object",
            "required": ["hold"],
            "properties": {
                "hold": _ref("Hold"),
                "entry": _ref("Entry"),
                "balance": {"type": "object"},
            },
        },
        "Daily": {
            "type": "object",
            "properties": {
                "account_id": _ID,
                "mode": _MODE,
                "type": {"type": "string"},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "opening_balance": {**_AMOUNT, "description": "Before the first day."},
                "data": _list(
                    {
                        "type": "object",
                        "properties": {
                            "day": {"type": "string", "format": "date"},
                            "balance": {**_AMOUNT, "description": "After the day's last entry."},
                            "usage": {**_AMOUNT, "description": "Charges less refunds."},
                            "totals": {
                                "type": "object",
                                "properties": {
                                    k: _AMOUNT for k in ("topup", "charge", "refund", "adjustment")
                                },
                            },
                            "entries": {"type": "integer", "minimum": 0},
                        },
                    }
                ),
            },
        },
        "BalanceAt": {
            "type": "object",
            "properties": {
                "account_id": _ID,
                "mode": _MODE,
                "at": timestamp,
                "payment": {"type": "string"},
                "type": {"type": "string"},
                "amount": _AMOUNT,
                "seq": {"type": "integer", "minimum": 0},
                "entry_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "Balance": {
            "type": "object",
            "properties": {
                "payment": {
                    "type": "string",
                    "description": "The payment type for the account. Can be prepaid or postpaid.",
                    "enum": ["prepaid", "postpaid"],
                },
                "type": {
                    "type": "string",
                    "description": "The type of balance: credits, euros, pounds, dollars, or "
                    "the ISO-4217 code of any other currency.",
                    "anyOf": [
                        {"enum": ["credits", "euros", "pounds", "dollars"]},
                        {"pattern": "^[A-Z]{3}$"},
                    ],
                },
                "amount": {
                    "type": "number",
                    "format": "double",
                    "description": "The available balance amount (0 when postpaid).",
                },
            },
        },
        "Errors": {
            "type": "object",
            "required": ["errors"],
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["code", "description", "parameter"],
                        "properties": {
                            "code": {"type": "integer"},
                            "description": {"type": "string"},
                            "parameter": nullable_text,
                        },
                    },
                }
            },
        },
        "NewAccount": {
            "type": "object",
            "required": ["payment", "type"],
            "additionalProperties": False,
            "properties": {
                "payment": {"type": "string", "enum": ["prepaid", "postpaid"]},
                "type": {
                    "type": "string",
                    "description": "credits, euros, pounds, dollars or an ISO-4217 code",
                },
                "name": {"type": "string", "minLength": 1, "maxLength": 255},
                "credit_limit": {**_AMOUNT, "description": "Postpaid only."},
                "metadata": _METADATA,
            },
        },
        "Account": {
            "type": "object",
            "properties": {
                "id": _ID,
                "name": nullable_text,
                "payment": {"type": "string", "enum": ["prepaid", "postpaid"]},
                "type": {"type": "string"},
                "scale": {"type": "integer"},
                "credit_limit": nullable_text,
                "metadata": _METADATA,
                "created_at": {"type": "string", "format": "date-time"},
                "balances": {
                    "type": "object",
                    "properties": {"live": ledger, "test": ledger},
                },
            },
        },
        "ApiKey": {
            "type": "object",
            "properties": {
                "id": _ID,
                "account_id": _ID,
                "mode": _MODE,
                "hint": {"type": "string"},
                "key": {"type": "string", "description": "Only in the creating response."},
                "status": {"type": "string", "enum": ["live", "expiring", "expired", "revoked"]},
                "created_at": {"type": "string", "format": "date-time"},
                "expires_at": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "A rotated key stops working then.",
                },
                "revoked_at": nullable_text,
            },
        },
        "RotatedKey": {
            "type": "object",
            "properties": {
                "key": {**_ref("ApiKey"), "description": "The new key, with `key` once."},
                "previous": {**_ref("ApiKey"), "description": "The old key, now expiring."},
            },
        },
        "AuditRecord": {
            "type": "object",
            "properties": {
                "seq": {"type": "integer"},
                "at": {"type": "string", "format": "date-time"},
                "actor": {
                    "type": "string",
                    "description": "A token's id, `admin-token` or `cli:<user>`.",
                },
                "action": {"type": "string", "examples": ["DELETE /v1/keys/{key_id}"]},
                "target": nullable_text,
                "address": nullable_text,
                "status": {"type": "integer"},
                "detail": {"type": "object"},
            },
        },
        "Entry": entry,
        "PostedEntry": {
            "type": "object",
            "properties": {
                "entry": _ref("Entry"),
                "balance": {
                    "type": "object",
                    "properties": {
                        "mode": _MODE,
                        "payment": {"type": "string"},
                        "type": {"type": "string"},
                        "amount": _AMOUNT,
                    },
                },
            },
        },
    }
