"""Shared sub-accounts: they spend their parent's balance, within a spending limit per
period, and their usage is still their own (entries attributed to them, counted)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.databases import raw_execute
from tests.servers import Admin, Server, cli


def shared(admin: Admin, parent: str, limit: str | None = None, period: str = "month") -> str:
    body: dict[str, Any] = {"parent": parent, "balance": "shared"}
    if limit is not None:
        body["spending_limit"] = {"amount": limit, "period": period}
    account = admin.account(**body)
    assert account["balance"] == "shared" and account["shared"]["funding"] == parent
    return str(account["id"])


def balance(server: Server, key: str) -> float:
    r = httpx.get(f"{server.url}/balance", headers={"Authorization": f"AccessKey {key}"})
    assert r.status_code == 200, r.text
    return float(r.json()["amount"])


def test_a_shared_sub_account_spends_its_parents_balance(server: Server, admin: Admin) -> None:
    reseller = admin.account()["id"]
    customer = shared(admin, reseller, limit="30", period="month")
    open_ended = shared(admin, reseller)
    admin.topup(reseller, "50")
    key = admin.key(customer)["key"]
    # What its key may spend: the smaller of the parent's 50 and the limit's 30.
    assert balance(server, key) == 30
    charge = admin.post(customer, "charges", amount="12", metadata={"country": "NL"})
    assert charge.status_code == 201, charge.text
    entry = charge.json()["entry"]
    # The money is the parent's: the entry is on its ledger, attributed to the customer.
    assert entry["account_id"] == reseller and entry["attributed_to"] == customer
    assert entry["balance_after"] == "38"
    assert balance(server, key) == 18
    assert balance(server, admin.key(open_ended)["key"]) == 38
    # Past the limit: refused with MessageBird's "not enough balance", nothing written.
    over = admin.post(customer, "charges", amount="18.01")
    assert over.status_code == 422 and over.json()["errors"][0]["code"] == 25, over.text
    assert "spending limit" in over.json()["errors"][0]["description"]
    assert admin.post(customer, "charges", amount="18").status_code == 201
    assert balance(server, key) == 0
    # A refund of its own charge gives the room back (and the money to the parent).
    refund = admin.post(customer, "refunds", amount="2", charge=entry["id"])
    assert refund.status_code == 201, refund.text
    assert refund.json()["entry"]["attributed_to"] == customer
    assert balance(server, key) == 2
    # The parent's floor binds too: the open-ended sibling cannot spend past 22.
    assert admin.post(open_ended, "charges", amount="22.01").status_code == 422
    assert admin.post(open_ended, "charges", amount="22").status_code == 201
    assert balance(server, key) == 0  # its limit leaves 2, the parent has nothing
    account = admin.http.get(f"/v1/accounts/{customer}").json()
    assert account["shared"]["spending_limit"] == {"amount": "30", "period": "month"}
    assert account["shared"]["live"] == {"spent": "28", "remaining": "2", "available": "0"}
    assert account["balances"]["live"]["amount"] == "0"  # no money of its own
    # Its entries are its own: listed under it, attributed.
    listed = admin.http.get(f"/v1/accounts/{customer}/entries").json()["data"]
    assert [e["attributed_to"] for e in listed] == [customer] * 3
    assert [e["kind"] for e in listed] == ["refund", "charge", "charge"]
    listing = admin.http.get(f"/v1/accounts/{reseller}/subaccounts").json()
    usage = {a["id"]: a["month_usage"] for a in listing["data"]}
    assert usage == {customer: "28", open_ended: "22"}
    assert listing["totals"]["live"]["amount"] == "0"  # the money stays counted once


def test_what_a_shared_sub_account_refuses(server: Server, admin: Admin) -> None:
    reseller = admin.account()["id"]
    other = admin.account()["id"]
    customer = shared(admin, reseller, limit="5", period="day")
    sibling = shared(admin, reseller)
    admin.topup(reseller, "20")
    for kind, body in (
        ("topups", {"amount": "1"}),
        ("adjustments", {"amount": "-1"}),
        ("holds", {"amount": "1"}),
    ):
        r = admin.post(customer, kind, **body)
        assert r.status_code == 422, (kind, r.text)
        assert r.json()["errors"][0]["parameter"] == "account"
    for source, to, parameter in ((customer, other, "from"), (other, customer, "to")):
        r = admin.transfer(source, to, "1")
        assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == parameter, r.text
    # A refund for it names one of its own charges, not a sibling's or the parent's.
    sibling_charge = admin.post(sibling, "charges", amount="1").json()["entry"]["id"]
    parent_charge = admin.post(reseller, "charges", amount="1").json()["entry"]["id"]
    for charge in (sibling_charge, parent_charge):
        r = admin.post(customer, "refunds", amount="1", charge=charge)
        assert r.status_code == 404 and r.json()["errors"][0]["parameter"] == "charge", r.text
    # The parent may refund a sub-account's charge: it stays that sub-account's.
    mine = admin.post(customer, "charges", amount="5").json()["entry"]["id"]
    assert admin.post(customer, "charges", amount="0.01").status_code == 422
    back = admin.post(reseller, "refunds", amount="3", charge=mine)
    assert back.status_code == 201 and back.json()["entry"]["attributed_to"] == customer
    assert admin.post(customer, "charges", amount="3").status_code == 201

    # Its alerts cannot ask for a top-up of a ledger it does not have.
    r = admin.http.post(
        f"/v1/accounts/{customer}/alerts", json={"below": "1", "recharge": {"amount": "5"}}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "recharge", r.text

    # Creation rules: a shared parent, another payment, a credit limit of its own.
    def refused(**body: Any) -> tuple[int, str | None]:
        r = admin.http.post("/v1/accounts", json={"payment": "prepaid", "type": "euros", **body})
        return r.status_code, r.json()["errors"][0]["parameter"]

    assert refused(parent=sibling, balance="shared") == (422, "balance")
    r = admin.http.post(
        "/v1/accounts",
        json={"payment": "postpaid", "type": "euros", "parent": reseller, "balance": "shared"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "payment"
    assert refused(
        parent=reseller, balance="shared", spending_limit={"amount": "0", "period": "day"}
    ) == (422, "spending_limit")
    assert refused(
        parent=reseller, balance="shared", spending_limit={"amount": "1", "period": "week"}
    ) == (422, "spending_limit")
    # An own-balance account has no spending limit to set.
    r = admin.http.put(
        f"/v1/accounts/{reseller}/spending-limit", json={"amount": "1", "period": "day"}
    )
    assert r.status_code == 422, r.text


def test_changing_the_limit(server: Server, admin: Admin) -> None:
    reseller = admin.account()["id"]
    customer = shared(admin, reseller, limit="10", period="all")
    admin.topup(reseller, "100")
    key = admin.key(customer)["key"]
    assert admin.post(customer, "charges", amount="8").status_code == 201
    assert balance(server, key) == 2
    r = admin.http.put(
        f"/v1/accounts/{customer}/spending-limit", json={"amount": "20", "period": "all"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["shared"]["live"]["remaining"] == "12"
    assert balance(server, key) == 12  # the cached answer did not outlive the change
    r = admin.http.put(f"/v1/accounts/{customer}/spending-limit", json={"amount": "5"})
    assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "period"
    r = admin.http.delete(f"/v1/accounts/{customer}/spending-limit")
    assert r.status_code == 200 and r.json()["shared"]["spending_limit"] is None
    assert r.json()["shared"]["live"]["remaining"] is None
    assert balance(server, key) == 92
    # The test ledger is the parent's test ledger, counted apart.
    assert admin.post(customer, "charges", amount="1", mode="test").status_code == 422
    admin.topup(reseller, "4", mode="test")
    assert admin.post(customer, "charges", amount="1", mode="test").status_code == 201
    test_key = admin.key(customer, mode="test")["key"]
    assert balance(server, test_key) == 3


def _cli_json(database_url: str, *args: str) -> dict[str, Any]:
    result = cli(*args, "--json", db_url=database_url)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _cli_tree(database_url: str, limit: str, period: str) -> tuple[str, dict[str, Any]]:
    """A parent and a shared sub-account of it (with a limit), made by the CLI."""
    parent = _cli_json(database_url, "accounts", "create", "--payment", "prepaid",
                       "--type", "euros")["id"]  # fmt: skip
    child = _cli_json(database_url, "accounts", "create", "--payment", "prepaid", "--type",
                      "euros", "--parent", parent, "--shared", "--limit", limit,
                      "--period", period)  # fmt: skip
    return str(parent), child


def test_the_cli_twins(database_url: str) -> None:
    def run(*args: str) -> dict[str, Any]:
        return _cli_json(database_url, *args)

    parent, child = _cli_tree(database_url, "4", "day")
    assert child["balance"] == "shared"
    assert child["shared"]["spending_limit"] == {"amount": "4", "period": "day"}
    run("topup", parent, "10")
    posted = run("charge", child["id"], "3")
    assert posted["entry"]["attributed_to"] == child["id"]
    refused = cli("charge", child["id"], "2", "--json", db_url=database_url)
    assert refused.returncode != 0 and "spending limit" in refused.stderr + refused.stdout
    changed = run("accounts", "limit", child["id"], "6", "--period", "day")
    assert changed["shared"]["live"]["remaining"] == "3"
    removed = run("accounts", "limit", child["id"], "--remove")
    assert removed["shared"]["spending_limit"] is None
    children = run("accounts", "children", parent)
    assert children["data"][0]["month_usage"] == "3"
    assert "ok" in cli("verify", db_url=database_url).stdout.lower()


def test_verify_replays_the_spending_counters(database_url: str) -> None:
    def run(*args: str) -> dict[str, Any]:
        return _cli_json(database_url, *args)

    reseller, made = _cli_tree(database_url, "10", "day")
    customer = made["id"]
    run("topup", reseller, "10")
    charge = run("charge", customer, "6")["entry"]["id"]
    run("refund", customer, "2", "--charge", charge)
    assert cli("verify", db_url=database_url).returncode == 0
    # A counter changed behind birdbalance's back: the limit would no longer hold.
    raw_execute(
        database_url,
        f"UPDATE spending SET spent_minor = 0 WHERE account_id = '{customer}' AND period = 'all'",
    )
    found = cli("verify", db_url=database_url)
    assert found.returncode != 0
    assert f"{customer} live: spending all is 0, its entries make 4" in found.stdout + found.stderr


def test_alerts_on_a_shared_sub_account_watch_what_it_may_spend(
    server: Server, admin: Admin
) -> None:
    """A rule on a shared sub-account is judged at each of its own charges and refunds
    against what it may spend: its limit's remainder, or its parent's available amount."""
    reseller = admin.account()["id"]
    customer = shared(admin, reseller, limit="10", period="month")
    admin.topup(reseller, "100")
    rule = admin.http.post(f"/v1/accounts/{customer}/alerts", json={"below": "4"})
    assert rule.status_code == 201 and rule.json()["state"] == "ok", rule.text

    def events() -> list[str]:
        found = admin.http.get("/v1/events", params={"account": customer}).json()["data"]
        return [e["type"] for e in reversed(found)]

    charge = admin.post(customer, "charges", amount="5").json()["entry"]["id"]
    assert events() == []  # 5 left of the limit
    assert admin.post(customer, "charges", amount="2").status_code == 201
    assert events() == ["balance.low"]  # 3 left
    low = admin.http.get(f"/v1/accounts/{customer}/alerts").json()["data"][0]
    assert low["state"] == "low"
    assert admin.post(customer, "refunds", amount="5", charge=charge).status_code == 201
    assert events() == ["balance.low", "balance.recovered"]  # 8 left
    # The events are the sub-account's own (its webhooks get them).
    body = admin.http.get("/v1/events", params={"account": customer}).json()["data"][0]
    assert body["data"]["account_id"] == customer
    # A new rule starts from what it may spend now (8), not its empty ledger.
    high = admin.http.post(f"/v1/accounts/{customer}/alerts", json={"below": "9"})
    assert high.json()["state"] == "low"
