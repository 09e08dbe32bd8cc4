"""GET /balance exactly as MessageBird serves it (../shared/CONTRACT.md), on a real server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.databases import sqlite_url
from tests.servers import Admin, Server

UNAUTHORIZED = (
    b'{"errors":[{"code":2,"description":"Request not allowed (incorrect access_key)",'
    b'"parameter":"access_key"}]}'
)


def _get(
    server: Server, path: str = "/balance", key: str | None = None, **kw: object
) -> httpx.Response:
    headers = dict(kw.pop("headers", {}))  # type: ignore[call-overload]
    if key is not None:
        headers["Authorization"] = f"AccessKey {key}"
    return httpx.request(
        str(kw.pop("method", "GET")), server.url + path, headers=headers, timeout=10, **kw
    )  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def euro_account(admin: Admin) -> dict[str, str]:
    account = admin.account("prepaid", "euros")
    admin.topup(account["id"], "9.2")
    admin.topup(account["id"], "0.5", mode="test")
    return {
        "id": account["id"],
        "live": admin.key(account["id"], "live")["key"],
        "test": admin.key(account["id"], "test")["key"],
    }


@pytest.mark.parametrize("path", ["/balance", "/balance/"])
def test_balance_on_both_paths_without_redirect(
    server: Server, euro_account: dict[str, str], path: str
) -> None:
    r = _get(server, path, euro_account["live"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.content == b'{"payment":"prepaid","type":"euros","amount":9.2}'


def test_legacy_query_parameter_key(server: Server, euro_account: dict[str, str]) -> None:
    r = _get(server, params={"access_key": euro_account["live"]})
    assert r.status_code == 200 and r.json()["amount"] == 9.2


def test_test_keys_read_the_sandbox_ledger(server: Server, euro_account: dict[str, str]) -> None:
    assert _get(server, key=euro_account["test"]).json()["amount"] == 0.5
    assert _get(server, key=euro_account["live"]).json()["amount"] == 9.2


def test_clients_headers_are_accepted(server: Server, euro_account: dict[str, str]) -> None:
    # Node sends only Authorization and User-Agent; Python adds a JSON Content-Type on GET.
    node = {"User-Agent": "MessageBird/ApiClient/4.0.1 Node.js/v20.20.2", "Accept": ""}
    python = {
        "Content-Type": "application/json; charset=UTF-8",
        "User-Agent": "MessageBird/ApiClient/2.2.0 Python/3.11.7",
    }
    for headers in (node, python):
        assert _get(server, key=euro_account["live"], headers=headers).status_code == 200


def test_method_override(server: Server, euro_account: dict[str, str]) -> None:
    r = _get(server, "/balance?_method=GET", euro_account["live"], method="POST")
    assert r.status_code == 200
    r = _get(server, "/balance?_method=DELETE", euro_account["live"])
    assert r.status_code == 405 and r.json()["errors"][0]["code"] == 21


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_with_errors_body(server: Server, method: str) -> None:
    r = _get(server, method=method)
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()["errors"][0]) == {"code", "description", "parameter"}


def test_every_bad_key_gets_the_same_401_bytes(
    server: Server, admin: Admin, euro_account: dict[str, str]
) -> None:
    revoked = admin.key(euro_account["id"])
    assert _get(server, key=revoked["key"]).status_code == 200
    assert admin.http.delete(f"/v1/keys/{revoked['id']}").status_code == 200
    answers = [
        _get(server),  # missing
        _get(server, headers={"Authorization": "AccessKey not a key!"}),  # malformed
        _get(server, headers={"Authorization": "Bearer " + euro_account["live"]}),  # wrong scheme
        _get(server, key="x" * 25),  # unknown
        _get(server, key=revoked["key"]),  # revoked
        _get(server, params={"access_key": "nope"}),
    ]
    for r in answers:
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/json"
        assert r.content == UNAUTHORIZED


def test_unknown_route_is_404_json(server: Server) -> None:
    r = _get(server, "/balances")
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] == 20 and r.json()["errors"][0]["parameter"] is None


@pytest.mark.parametrize(
    ("payment", "type_", "topup", "expected_type", "expected_amount"),
    [
        ("prepaid", "credits", "103", "credits", b"103"),
        ("prepaid", "pounds", "10.1", "pounds", b"10.1"),
        ("prepaid", "USD", "0.0075", "dollars", b"0.0075"),
        ("prepaid", "JPY", "1234567.000001", "JPY", b"1234567.000001"),
        ("postpaid", "euros", "55", "euros", b"0"),
    ],
)
def test_types_and_exact_amounts(
    server: Server,
    admin: Admin,
    payment: str,
    type_: str,
    topup: str,
    expected_type: str,
    expected_amount: bytes,
) -> None:
    account = admin.account(payment, type_)
    admin.topup(account["id"], topup)
    r = _get(server, key=admin.key(account["id"])["key"])
    expected = b'{"payment":"%s","type":"%s","amount":%s}' % (
        payment.encode(),
        expected_type.encode(),
        expected_amount,
    )
    assert r.content == expected
    assert json.loads(r.content)["type"] == expected_type


def test_postpaid_usage_still_reports_zero(server: Server, admin: Admin) -> None:
    account = admin.account("postpaid", "euros", credit_limit="100")
    assert admin.post(account["id"], "charges", amount="42.5").status_code == 201
    assert _get(server, key=admin.key(account["id"])["key"]).json() == {
        "payment": "postpaid",
        "type": "euros",
        "amount": 0,
    }


def test_balance_follows_writes_immediately(server: Server, admin: Admin) -> None:
    account = admin.account()
    key = admin.key(account["id"])["key"]
    admin.topup(account["id"], "10")
    assert admin.post(account["id"], "charges", amount="0.8").status_code == 201
    assert _get(server, key=key).json()["amount"] == 9.2


def test_unexpected_failure_is_500_code_99_without_a_trace(tmp_path: Path) -> None:
    srv = Server(db_url=sqlite_url(tmp_path / "broken.db"), log_path=tmp_path / "log").start()
    try:
        admin = Admin(srv.url)
        account = admin.account()
        key = admin.key(account["id"])["key"]
        raw = sqlite3.connect(srv.db_path)
        raw.execute("ALTER TABLE balances RENAME TO balances_gone")
        raw.commit()
        raw.close()
        r = _get(srv, key=key)
        assert r.status_code == 500
        assert r.json() == {
            "errors": [{"code": 99, "description": "Internal error", "parameter": None}]
        }
        r = admin.http.get(f"/v1/accounts/{account['id']}")
        assert r.status_code == 500 and r.json()["errors"][0]["code"] == 99
        assert b"Traceback" not in r.content and b"sqlite" not in r.content.lower()
        admin.http.close()
    finally:
        srv.stop()
