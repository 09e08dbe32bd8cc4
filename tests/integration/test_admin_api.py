"""The admin API under /v1/ on a real server: accounts, keys, entries, errors."""

from __future__ import annotations

import httpx
import pytest

from tests.servers import Admin, Server


def _error(r: httpx.Response) -> dict[str, object]:
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    return body["errors"][0]  # type: ignore[no-any-return]


def test_admin_token_is_required(server: Server) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": "AccessKey " + "a" * 25},
    ):
        r = httpx.get(server.url + "/v1/accounts", headers=headers)
        assert r.status_code == 401 and _error(r)["code"] == 2


def test_account_lifecycle(admin: Admin) -> None:
    created = admin.account(
        "postpaid", "GBP", name="Reseller A", credit_limit="250.5", metadata={"crm": "42"}
    )
    assert created["type"] == "pounds" and created["scale"] == 6
    assert created["credit_limit"] == "250.5" and created["metadata"] == {"crm": "42"}
    assert created["balances"] == {
        "live": {"amount": "0", "pending": "0", "available": "0", "entries": 0},
        "test": {"amount": "0", "pending": "0", "available": "0", "entries": 0},
    }
    got = admin.http.get(f"/v1/accounts/{created['id']}")
    assert got.status_code == 200 and got.json() == created
    found = admin.http.get("/v1/accounts", params={"search": "Reseller A"}).json()
    assert [a["id"] for a in found["data"]] == [created["id"]]


def test_account_pages_are_bounded_and_complete(admin: Admin) -> None:
    ids = {admin.account(name="paging")["id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", "search": "paging"} | ({"cursor": cursor} if cursor else {})
        page = admin.http.get("/v1/accounts", params=params).json()
        assert len(page["data"]) <= 2
        seen += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert set(seen) == ids and len(seen) == len(ids)
    r = admin.http.get("/v1/accounts", params={"limit": "501"})
    assert r.status_code == 422 and _error(r)["parameter"] == "limit"


@pytest.mark.parametrize(
    ("body", "status", "code", "parameter"),
    [
        ({"type": "euros"}, 422, 9, "payment"),
        ({"payment": "prepaid"}, 422, 9, "type"),
        ({"payment": "weekly", "type": "euros"}, 422, 10, "payment"),
        ({"payment": "prepaid", "type": "bitcoin"}, 422, 10, "type"),
        ({"payment": "prepaid", "type": "euros", "credit_limit": "5"}, 422, 10, "credit_limit"),
        ({"payment": "prepaid", "type": "euros", "colour": "red"}, 422, 10, "colour"),
        ({"payment": "prepaid", "type": "euros", "metadata": {"a": 1}}, 422, 10, "metadata"),
    ],
)
def test_bad_accounts(
    admin: Admin, body: dict[str, object], status: int, code: int, parameter: str
) -> None:
    r = admin.http.post("/v1/accounts", json=body)
    assert r.status_code == status
    assert _error(r) | {"description": ""} == {
        "code": code,
        "parameter": parameter,
        "description": "",
    }


@pytest.mark.parametrize(
    ("path", "body", "parameter", "words"),
    [
        ("alerts", {"below": "1", "recharge": {"amount": "5", "max_failures": 0}}, "recharge",
         "recharge.max_failures must be at least 1"),
        ("alerts", {"below": "1", "recharge": {"amount": "5", "every": 2}}, "recharge",
         "unknown parameter 'recharge.every'"),
        ("alerts", {"below": "1", "recharge": {"amount": "-5"}}, "recharge", "recharge.amount"),
        ("charges", {"amount": "1", "metadata": {"a": {"b": {"c": "deep"}}}}, "metadata",
         "each metadata value must be a string"),
        ("charges", {"amount": "1", "metadata": {"a\u0000": "x"}}, "metadata", "NUL"),
        ("charges", {"amount": "1", "mode": "prod"}, "mode", "must be one of live, test"),
        ("holds", {"amount": "1", "expires_in": 1.5}, "expires_in", "whole number of seconds"),
    ],
)  # fmt: skip
def test_a_refused_body_names_its_field_and_path(
    admin: Admin, path: str, body: dict[str, object], parameter: str, words: str
) -> None:
    """The request models' refusals over HTTP: 422, the top-level field as ``parameter``,
    the path in the description, and nothing written."""
    account = admin.account()["id"]
    r = admin.http.post(
        f"/v1/accounts/{account}/{path}", json=body, headers={"Idempotency-Key": f"no-{path}"}
    )
    assert r.status_code == 422, r.text
    error = _error(r)
    assert error["parameter"] == parameter and words in error["description"], error
    shown = admin.http.get(f"/v1/accounts/{account}").json()
    assert shown["balances"]["live"]["entries"] == 0
    assert admin.http.get(f"/v1/accounts/{account}/alerts").json()["data"] == []


def test_keys_are_shown_once_and_listed_without_secrets(admin: Admin) -> None:
    account = admin.account()
    key = admin.key(account["id"], "test")
    assert key["key"].startswith("test_") and key["hint"].endswith(key["key"][-4:])
    listed = admin.http.get(f"/v1/accounts/{account['id']}/keys").json()["data"]
    assert listed == [{k: v for k, v in key.items() if k != "key"}]
    assert key["key"] not in admin.http.get(f"/v1/accounts/{account['id']}/keys").text
    revoked = admin.http.delete(f"/v1/keys/{key['id']}").json()
    assert revoked["revoked_at"] is not None
    assert admin.http.delete(f"/v1/keys/{key['id']}").json() == revoked
    assert admin.http.post(f"/v1/keys/{key['id']}?_method=DELETE").json() == revoked
    assert admin.http.delete("/v1/keys/key_00000000000000000000000000").status_code == 404


def test_entries_move_the_balance_and_are_listed(admin: Admin) -> None:
    account = admin.account()
    aid = account["id"]
    topup = admin.topup(aid, "10")
    assert topup["balance"] == {
        "mode": "live",
        "payment": "prepaid",
        "type": "euros",
        "amount": "10",
    }
    charge = admin.post(
        aid, "charges", amount=0.0075, reference="msg-1", metadata={"recipient": "31600000000"}
    ).json()
    assert charge["entry"]["amount"] == "-0.0075"
    assert charge["entry"]["balance_after"] == "9.9925"
    assert charge["entry"]["reference"] == "msg-1"
    refund = admin.post(aid, "refunds", amount="0.0075", charge=charge["entry"]["id"]).json()
    assert refund["entry"]["refund_of"] == charge["entry"]["id"]
    assert refund["balance"]["amount"] == "10"
    adjust = admin.post(aid, "adjustments", amount="-0.5").json()
    assert adjust["balance"]["amount"] == "9.5"
    page = admin.http.get(f"/v1/accounts/{aid}/entries", params={"limit": "3"}).json()
    assert [e["kind"] for e in page["data"]] == ["adjustment", "refund", "charge"]
    rest = admin.http.get(
        f"/v1/accounts/{aid}/entries", params={"cursor": page["next_cursor"]}
    ).json()
    assert [e["kind"] for e in rest["data"]] == ["topup"] and not rest["has_more"]
    sandbox = admin.http.get(f"/v1/accounts/{aid}/entries", params={"mode": "test"}).json()
    assert sandbox["data"] == []


def test_not_enough_balance_changes_nothing(admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, "1")
    r = admin.post(aid, "charges", amount="1.000001")
    assert r.status_code == 422 and _error(r)["code"] == 25
    account = admin.http.get(f"/v1/accounts/{aid}").json()
    assert account["balances"]["live"] == {
        "amount": "1",
        "pending": "0",
        "available": "1",
        "entries": 1,
    }


def test_postpaid_credit_limit(admin: Admin) -> None:
    aid = admin.account("postpaid", "euros", credit_limit="10")["id"]
    assert admin.post(aid, "charges", amount="9.5").json()["balance"]["amount"] == "-9.5"
    r = admin.post(aid, "charges", amount="0.6")
    assert r.status_code == 422 and _error(r)["code"] == 25
    assert admin.post(aid, "topups", amount="9.5").json()["balance"]["amount"] == "0"


def test_refunds_never_exceed_the_charge(admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, "5")
    charge = admin.post(aid, "charges", amount="2").json()["entry"]["id"]
    assert admin.post(aid, "refunds", amount="1.5", charge=charge).status_code == 201
    r = admin.post(aid, "refunds", amount="0.6", charge=charge)
    assert r.status_code == 422 and _error(r)["parameter"] == "amount"
    r = admin.post(aid, "refunds", amount="0.1")
    assert r.status_code == 422 and _error(r)["code"] == 9
    topup = admin.topup(aid, "1")["entry"]["id"]
    r = admin.post(aid, "refunds", amount="0.1", charge=topup)
    assert r.status_code == 422 and _error(r)["parameter"] == "charge"


def test_idempotency(admin: Admin) -> None:
    aid = admin.account()["id"]
    first = admin.post(aid, "topups", idem="order-77", amount="3")
    again = admin.post(aid, "topups", idem="order-77", amount=3)
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    conflict = admin.post(aid, "topups", idem="order-77", amount="4")
    assert conflict.status_code == 409 and _error(conflict)["parameter"] == "Idempotency-Key"
    other_kind = admin.post(aid, "charges", idem="order-77", amount="3")
    assert other_kind.status_code == 409
    r = admin.http.post(f"/v1/accounts/{aid}/topups", json={"amount": "1"})
    assert r.status_code == 422 and _error(r) == {
        "code": 9,
        "description": "the Idempotency-Key header is required",
        "parameter": "Idempotency-Key",
    }
    assert admin.http.get(f"/v1/accounts/{aid}").json()["balances"]["live"]["amount"] == "3"


def test_account_and_key_creation_are_idempotent_too(admin: Admin) -> None:
    body = {"payment": "prepaid", "type": "credits"}
    headers = {"Idempotency-Key": "create-account-1"}
    a = admin.http.post("/v1/accounts", json=body, headers=headers).json()
    b = admin.http.post("/v1/accounts", json=body, headers=headers).json()
    assert a["id"] == b["id"]
    headers = {"Idempotency-Key": "create-key-1"}
    k1 = admin.http.post(f"/v1/accounts/{a['id']}/keys", json={}, headers=headers).json()
    k2 = admin.http.post(f"/v1/accounts/{a['id']}/keys", json={}, headers=headers).json()
    assert k1["id"] == k2["id"] and "key" in k1 and "key" not in k2


@pytest.mark.parametrize(
    "amount",
    ["1.0000001", "-1", "0", "NaN", "1e3", "Infinity", " 1", "", True, None, [], {}],
)
def test_bad_amounts_are_422_and_change_nothing(admin: Admin, amount: object) -> None:
    aid = admin.account()["id"]
    r = admin.post(aid, "topups", amount=amount)
    assert r.status_code == 422
    assert _error(r)["parameter"] == "amount"
    assert admin.http.get(f"/v1/accounts/{aid}").json()["balances"]["live"]["entries"] == 0


def test_malformed_and_oversized_bodies(admin: Admin, server: Server) -> None:
    aid = admin.account()["id"]
    headers = {"Idempotency-Key": "x1", "Content-Type": "application/json"}
    r = admin.http.post(f"/v1/accounts/{aid}/topups", content=b"{nope", headers=headers)
    assert r.status_code == 400 and _error(r)["code"] == 21
    r = admin.http.post(f"/v1/accounts/{aid}/topups", content=b'{"amount": NaN}', headers=headers)
    assert r.status_code == 400
    big = b'{"amount":"1","reference":"' + b"x" * 70_000 + b'"}'
    r = admin.http.post(f"/v1/accounts/{aid}/topups", content=big, headers=headers)
    assert r.status_code == 413 and _error(r)["code"] == 21
    # Chunked, with no Content-Length to refuse it early: cut off while reading.
    r = admin.http.post(
        f"/v1/accounts/{aid}/topups", content=iter([big[:40_000], big[40_000:]]), headers=headers
    )
    assert r.status_code == 413 and _error(r)["code"] == 21
    r = admin.http.get(f"/v1/accounts/{aid}/charges")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = admin.http.post(
        f"/v1/accounts/{aid}/topups",
        json={"amount": "1"},
        headers={"Idempotency-Key": "x2", "Authorization": "Bearer wrong-token-0123456789"},
    )
    assert r.status_code == 401 and _error(r)["parameter"] == "Authorization"
    assert admin.http.get(f"/v1/accounts/{aid}").json()["balances"]["live"]["entries"] == 0


def test_unknown_ids_and_routes(admin: Admin) -> None:
    r = admin.http.get("/v1/accounts/acc_00000000000000000000000000")
    assert r.status_code == 404 and _error(r)["parameter"] == "account"
    r = admin.http.get("/v1/accounts/not-an-id/entries")
    assert r.status_code == 404
    r = admin.post("acc_00000000000000000000000000", "charges", amount="1")
    assert r.status_code == 404
    r = admin.http.get("/v1/nothing-here")
    assert r.status_code == 404 and _error(r)["code"] == 20
    r = admin.http.put("/v1/accounts")
    assert r.status_code == 405 and "GET" in r.headers["allow"]


def test_openapi_document(server: Server) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    get = doc["paths"]["/balance"]["get"]
    assert get["operationId"] == "getBalance" and get["tags"] == ["Balance"]
    assert doc["components"]["securitySchemes"]["accessKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Access key authentication in the form of 'AccessKey {accessKey}'.",
    }
    balance = doc["components"]["schemas"]["Balance"]["properties"]
    assert set(balance) == {"payment", "type", "amount"}
    assert balance["amount"] == {
        "type": "number",
        "format": "double",
        "description": "The available balance amount (0 when postpaid).",
    }
    for path in [
        "/v1/accounts",
        "/v1/accounts/{account_id}/keys",
        "/v1/keys/{key_id}",
        "/v1/accounts/{account_id}/charges",
        "/v1/accounts/{account_id}/entries",
        "/v1/accounts/{account_id}/balance",
        "/v1/accounts/{account_id}/holds",
        "/v1/holds/{hold_id}",
        "/v1/holds/{hold_id}/capture",
        "/v1/holds/{hold_id}/void",
        "/readyz",
    ]:
        assert path in doc["paths"]
    # Every route the server has is documented, with a method the server answers.
    from birdbalance.http.admin import AdminAPI

    class _Nothing:
        class store:
            max_concurrent_writes = 1
            engine = "sqlite"

    class _Idle:
        read = writes = None

    routes = AdminAPI(_Nothing(), _Idle(), None, 1024).routes()  # type: ignore[arg-type]
    for route in routes:
        documented = {m.upper() for m in doc["paths"][route.path]}
        assert documented == set(route.methods or ()) - {"HEAD"}, route.path


def test_entry_filters_and_days_over_http(admin: Admin) -> None:
    account = admin.account()["id"]
    admin.topup(account, "100")
    for n in range(4):
        assert admin.post(account, "charges", amount="2", reference=f"r{n % 2}").status_code == 201
    entries = f"/v1/accounts/{account}/entries"

    def kinds(**params: str) -> list[str]:
        r = admin.http.get(entries, params=params)
        assert r.status_code == 200, r.text
        return [e["kind"] for e in r.json()["data"]]

    assert kinds(kind="charge") == ["charge"] * 4
    assert kinds(reference="r1", limit="1") == ["charge"]
    assert kinds(reference="r1") == ["charge", "charge"]
    assert kinds(**{"from": "2999-01-01T00:00:00Z"}) == []
    assert kinds(to="2000-01-01T00:00:00+02:00") == []
    for params, parameter in (
        ({"kind": "gift"}, "kind"),
        ({"from": "monday"}, "from"),
        ({"to": "2026-01-01"}, "to"),
        ({"reference": "x" * 256}, "reference"),
    ):
        r = admin.http.get(entries, params=params)
        assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == parameter
    days = admin.http.get(f"/v1/accounts/{account}/daily", params={"days": "3"}).json()
    assert [d["balance"] for d in days["data"]][-1] == "92"
    assert days["data"][-1]["usage"] == "8" and days["data"][-1]["entries"] == 5
    assert days["opening_balance"] == "0" and len(days["data"]) == 3
    for bad in ("0", "367", "x", "9" * 30):
        r = admin.http.get(f"/v1/accounts/{account}/daily", params={"days": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "days"
    missing = admin.http.get("/v1/accounts/acc_01JD3Z8Q6W6B7Y2M0N4R5T8V9X/daily")
    assert missing.status_code == 404
