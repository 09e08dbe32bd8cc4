"""Sub-accounts with their own balance: a parent, at most three levels, the parent's
asset, funded and drained by transfers, listed under their parent with totals."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.servers import Admin, Server, cli


def test_a_reseller_tree_funded_by_transfers(server: Server, admin: Admin) -> None:
    platform = admin.account()["id"]
    reseller = admin.account(parent=platform)
    assert reseller["parent"] == platform
    customers = [admin.account(parent=reseller["id"], name=f"c{n}")["id"] for n in range(3)]
    admin.topup(platform, "100")

    def move(idem: str, source: str, to: str, amount: str) -> None:
        r = admin.transfer(source, to, amount, idem)
        assert r.status_code == 201, r.text

    move("fund-reseller", platform, reseller["id"], "60")
    for n, customer in enumerate(customers):
        move(f"fund-{n}", reseller["id"], customer, str(10 * (n + 1)))
    admin.post(customers[0], "charges", amount="4")
    listing = admin.http.get(f"/v1/accounts/{reseller['id']}/subaccounts", params={"limit": 2})
    assert listing.status_code == 200, listing.text
    page = listing.json()
    assert page["parent"] == reseller["id"] and page["has_more"] is True
    assert [a["id"] for a in page["data"]] == customers[:2]
    # This month's usage of each: its charges less refunds (transfers are not usage).
    assert [a["month_usage"] for a in page["data"]] == ["4", "0"]
    # The totals are all sub-accounts', not the page's: 10 - 4 + 20 + 30.
    assert page["totals"]["accounts"] == 3
    assert page["totals"]["live"]["amount"] == "56"
    rest = admin.http.get(
        f"/v1/accounts/{reseller['id']}/subaccounts", params={"cursor": page["next_cursor"]}
    ).json()
    assert [a["id"] for a in rest["data"]] == customers[2:] and rest["has_more"] is False
    top = admin.http.get(f"/v1/accounts/{platform}/subaccounts").json()
    assert [a["id"] for a in top["data"]] == [reseller["id"]]
    assert top["totals"]["live"]["amount"] == "0"  # the reseller passed all 60 on
    assert admin.http.get(f"/v1/accounts/{customers[0]}").json()["parent"] == reseller["id"]


def test_refused_trees(server: Server, admin: Admin) -> None:
    def refused(**body: Any) -> tuple[int, str | None]:
        r = admin.http.post("/v1/accounts", json={"payment": "prepaid", "type": "euros", **body})
        assert r.status_code in (404, 422), r.text
        return r.status_code, r.json()["errors"][0]["parameter"]

    level1 = admin.account()["id"]
    level2 = admin.account(parent=level1)["id"]
    level3 = admin.account(parent=level2)["id"]
    assert refused(parent=level3) == (422, "parent")  # a fourth level
    assert refused(parent="acc_" + "0" * 26) == (404, "parent")
    assert refused(parent="nonsense") == (404, "parent")
    r = admin.http.post(
        "/v1/accounts", json={"payment": "prepaid", "type": "dollars", "parent": level1}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "type"
    assert refused(balance="shared") == (422, "balance")  # no parent
    assert refused(
        parent=level1, balance="own", spending_limit={"amount": "1", "period": "day"}
    ) == (
        422,
        "spending_limit",
    )
    assert refused(parent=level1, balance="borrowed") == (422, "balance")
    unknown = admin.http.get("/v1/accounts/acc_" + "0" * 26 + "/subaccounts")
    assert unknown.status_code == 404
    leaf = admin.http.get(f"/v1/accounts/{level3}/subaccounts").json()
    assert leaf["data"] == [] and leaf["totals"]["accounts"] == 0


def test_the_children_command(database_url: str) -> None:
    def run(*args: str) -> dict[str, Any]:
        result = cli(*args, "--json", db_url=database_url)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    parent = run("accounts", "create", "--payment", "prepaid", "--type", "euros")["id"]
    child = run("accounts", "create", "--payment", "prepaid", "--type", "euros", "--parent", parent)
    assert child["parent"] == parent
    run("topup", parent, "3")
    run("transfer", parent, child["id"], "2")
    listed = run("accounts", "children", parent)
    assert [a["id"] for a in listed["data"]] == [child["id"]]
    assert listed["totals"]["live"]["amount"] == "2"
    table = cli("accounts", "children", parent, db_url=database_url)
    assert child["id"] in table.stdout and "1 sub-accounts; live: 2" in table.stdout


def test_alerts_keys_and_statements_work_on_a_sub_account(server: Server, admin: Admin) -> None:
    """A sub-account is an account: its alert fires when a transfer takes it below the
    threshold and recovers when one brings it back; its key reads its own balance; its
    statement counts the transfers."""
    parent = admin.account("prepaid", "credits")["id"]
    child = admin.account("prepaid", "credits", parent=parent)["id"]
    admin.topup(parent, "100")

    def move(idem: str, source: str, to: str, amount: str) -> None:
        r = admin.transfer(source, to, amount, idem)
        assert r.status_code == 201, r.text

    move("in", parent, child, "30")
    rule = admin.http.post(f"/v1/accounts/{child}/alerts", json={"below": "20"}).json()
    move("back", child, parent, "15")  # 15: below 20
    move("again", parent, child, "10")  # 25: recovered
    events = admin.http.get("/v1/events", params={"account": child}).json()["data"]
    assert [e["type"] for e in reversed(events)] == ["balance.low", "balance.recovered"]
    assert events[-1]["data"]["alert_id"] == rule["id"]
    key = admin.key(child)["key"]
    balance = httpx.get(server.url + "/balance", headers={"Authorization": f"AccessKey {key}"})
    assert balance.json() == {"payment": "prepaid", "type": "credits", "amount": 25}
    statement = admin.http.get(
        f"/v1/accounts/{child}/statement", params={"from": "2000-01-01T00:00:00Z"}
    )
    assert statement.status_code == 200, statement.text
    body = statement.json()
    assert body["counts"]["transfer"] == 3 and body["totals"]["transfer"] == "25", body
