"""The limits the OpenAPI document states are the limits the server enforces.

Each limit is read from the served document (never restated here), then a request at
the limit is accepted and one just past it is refused with 422 and the field named.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.servers import Admin, Server


@pytest.fixture(scope="module")
def document(server: Server, admin: Admin) -> dict[str, Any]:
    found: dict[str, Any] = admin.http.get("/openapi.json").json()
    return found


def _schema(document: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    body = document["paths"][path][method]["requestBody"]["content"]["application/json"]
    schema: dict[str, Any] = body["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """A body field's schema; an optional field's is its one non-null alternative."""
    field: dict[str, Any] = schema["properties"][name]
    options = [o for o in field.get("anyOf", [field]) if o.get("type") != "null"]
    assert len(options) == 1, field
    return options[0]


def _query_limit(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    for parameter in document["paths"][path]["get"]["parameters"]:
        if parameter["name"] == name:
            found: dict[str, Any] = parameter["schema"]
            return found
    raise AssertionError(f"{path} has no {name}")


def _refused(response: Any, parameter: str) -> bool:
    if response.status_code != 422:
        return False
    return any(e["parameter"] == parameter for e in response.json()["errors"])


def test_entry_body_limits(admin: Admin, document: dict[str, Any]) -> None:
    account = admin.account()["id"]
    schema = _schema(document, "/v1/accounts/{account_id}/topups")
    longest = _field(schema, "reference")["maxLength"]
    assert admin.post(account, "topups", amount="1", reference="r" * longest).status_code == 201
    past = admin.post(account, "topups", amount="1", reference="r" * (longest + 1))
    assert _refused(past, "reference"), past.text
    metadata = _field(schema, "metadata")
    most = metadata["maxProperties"]
    value_chars = metadata["additionalProperties"]["maxLength"]
    full = {f"k{n}": "v" * value_chars for n in range(most)}
    assert admin.post(account, "topups", amount="1", metadata=full).status_code == 201
    for too_much in ({**full, "extra": "v"}, {"k": "v" * (value_chars + 1)}):
        refused = admin.post(account, "topups", amount="1", metadata=too_much)
        assert _refused(refused, "metadata"), refused.text


def test_idempotency_key_and_account_name_limits(admin: Admin, document: dict[str, Any]) -> None:
    account = admin.account()["id"]
    operation = document["paths"]["/v1/accounts/{account_id}/topups"]["post"]
    header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    longest = header["schema"]["maxLength"]
    assert admin.post(account, "topups", "i" * longest, amount="1").status_code == 201
    past = admin.post(account, "topups", "i" * (longest + 1), amount="1")
    assert _refused(past, "Idempotency-Key"), past.text
    name_chars = _field(_schema(document, "/v1/accounts"), "name")["maxLength"]
    body = {"payment": "prepaid", "type": "euros"}
    assert (
        admin.http.post("/v1/accounts", json={**body, "name": "n" * name_chars}).status_code == 201
    )
    past = admin.http.post("/v1/accounts", json={**body, "name": "n" * (name_chars + 1)})
    assert _refused(past, "name"), past.text


def test_page_size_limits(admin: Admin, document: dict[str, Any]) -> None:
    for path in ("/v1/accounts", "/v1/audit", "/v1/events", "/v1/deliveries"):
        most = _query_limit(document, path, "limit")["maximum"]
        assert admin.http.get(path, params={"limit": most}).status_code == 200, path
        past = admin.http.get(path, params={"limit": most + 1})
        assert _refused(past, "limit"), (path, past.text)


def test_hold_expiry_limit(admin: Admin, document: dict[str, Any]) -> None:
    account = admin.account()["id"]
    admin.topup(account, "10")
    expires_in = _field(_schema(document, "/v1/accounts/{account_id}/holds"), "expires_in")
    least, most = expires_in["minimum"], expires_in["maximum"]
    for fine in (least, most):
        assert admin.post(account, "holds", amount="1", expires_in=fine).status_code == 201
    for past in (least - 1, most + 1):
        refused = admin.post(account, "holds", amount="1", expires_in=past)
        assert _refused(refused, "expires_in"), refused.text


def test_every_event_type_has_a_documented_webhook(document: dict[str, Any]) -> None:
    from birdbalance.alerts import EventType

    assert set(document["webhooks"]) == {t.value for t in EventType}
    for hook in document["webhooks"].values():
        body = hook["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/Event"}
    event = document["components"]["schemas"]["Event"]
    assert set(event["required"]) == {"id", "type", "created_at", "data"}
