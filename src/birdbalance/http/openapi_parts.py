"""The OpenAPI document's parts: shared schema pieces, the component schemas (responses
from :mod:`birdbalance.shapes`, request bodies from :mod:`birdbalance.request_shapes`;
MessageBird's ``Balance`` and the errors body written here) and the ``webhooks:``
section."""

from __future__ import annotations

from typing import Any

from birdbalance import bulk_requests, request_shapes, shapes
from birdbalance.alerts import EventType
from birdbalance.ledger import HoldStatus
from birdbalance.storage import MAX_PAGE_SIZE
from birdbalance.validation import (
    MAX_IDEMPOTENCY_KEY_CHARS,
)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_responses(*statuses: int) -> dict[str, Any]:
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
    return {str(s): json_response(ref("ErrorBody"), text[s]) for s in statuses}


ID = {"type": "string", "pattern": shapes.ID_PATTERN}

MODE = {"type": "string", "enum": ["live", "test"], "default": "live"}

IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_CHARS},
    "description": "Same key and same body returns the original result; a different body is 409.",
}

ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


def query_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


HOLD_STATUSES = [s.value for s in HoldStatus]

LIMIT = query_param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE})

EVENT_SUMMARIES = {
    EventType.LOW: "The available amount fell below an alert rule's threshold",
    EventType.RECOVERED: "The available amount rose above threshold + hysteresis again",
    EventType.DEPLETED: "A prepaid ledger's available amount reached zero",
    EventType.CREDIT_LIMIT_REACHED: "A postpaid ledger reached its credit limit",
    EventType.TOPUP_REQUESTED: "An alert rule with auto-recharge asks for a top-up",
    EventType.RECHARGE_DISABLED: "Auto-recharge gave up after its failures in a row",
}


def webhook_operations() -> dict[str, Any]:
    """What birdbalance POSTs to a subscription, one entry per event type."""
    hooks = {}
    for event_type in EventType:
        hooks[event_type.value] = {
            "post": {
                "operationId": "on_" + event_type.value.replace(".", "_"),
                # birdbalance calls the receiver: signed, with no credential of its own.
                "security": [],
                "summary": EVENT_SUMMARIES[event_type],
                "description": "Signed with `Birdbalance-Signature` (`t=<unix>,v1=<hex"
                " HMAC-SHA256 of t.body>` under the subscription's secret) and, for a"
                " secret in the Standard Webhooks format (every secret issued now), with"
                " `webhook-id`, `webhook-timestamp` and `webhook-signature` as that"
                " specification defines them; check either with"
                " `birdbalance.verify_webhook` (or a `standardwebhooks` library);"
                " `Birdbalance-Event-Id` and `webhook-id` are the event's id (deliveries"
                " are at least once). Retried with backoff until a 2xx.",
                "parameters": [
                    {
                        "name": "Birdbalance-Signature",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "Birdbalance-Event-Id",
                        "in": "header",
                        "required": True,
                        "schema": ID,
                    },
                    *(
                        {"name": name, "in": "header", "required": False, "schema": schema}
                        for name, schema in (
                            ("webhook-id", ID),
                            ("webhook-timestamp", {"type": "string", "pattern": "^[0-9]+$"}),
                            ("webhook-signature", {"type": "string"}),
                        )
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("Event")}},
                },
                "responses": {"2XX": {"description": "Delivered; anything else is retried."}},
            }
        }
    return hooks


def array_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def page_of(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data", "next_cursor", "has_more"],
        "properties": {
            "data": {"type": "array", "items": ref(item)},
            "next_cursor": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"},
        },
    }


def component_schemas() -> dict[str, Any]:
    """Response schemas from :mod:`birdbalance.shapes`, request bodies from
    :mod:`birdbalance.request_shapes`; MessageBird's ``Balance`` and the errors body
    written here."""
    responses = shapes.schemas()
    requests = {**request_shapes.schemas(), **bulk_requests.schemas()}
    shared = responses.keys() & requests.keys()
    assert all(responses[name] == requests[name] for name in shared), shared
    return {
        **responses,
        **requests,
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
        "ErrorBody": {
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
                            "parameter": {"type": ["string", "null"]},
                        },
                    },
                }
            },
        },
    }
