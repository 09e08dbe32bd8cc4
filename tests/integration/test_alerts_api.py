"""Alert rules over HTTP and the CLI: one event per crossing, in the outbox at once."""

from __future__ import annotations

from tests.servers import Admin, cli


def test_rules_and_events_over_http(admin: Admin) -> None:
    aid = admin.account("prepaid", "credits")["id"]
    admin.topup(aid, "100")
    r = admin.http.post(f"/v1/accounts/{aid}/alerts", json={"below": "20", "hysteresis": "5"})
    assert r.status_code == 201, r.text
    rule = r.json()
    assert (rule["below"], rule["hysteresis"], rule["state"]) == ("20", "5", "ok")
    for _ in range(9):  # 100 -> 10 in steps of 10: one low, never one per charge
        assert admin.post(aid, "charges", amount="10").status_code == 201
    assert admin.post(aid, "charges", amount="10").status_code == 201  # 0: depleted
    assert admin.post(aid, "charges", amount="1").status_code == 422  # refused: no event
    admin.topup(aid, "24")  # 24: within the hysteresis
    admin.topup(aid, "2")  # 26: recovered
    page = admin.http.get("/v1/events", params={"account": aid}).json()
    types = [e["type"] for e in reversed(page["data"])]
    assert types == ["balance.low", "balance.depleted", "balance.recovered"]
    low = page["data"][-1]
    assert low["data"]["available"] == "10" and low["data"]["threshold"] == "20"
    assert low["data"]["alert_id"] == rule["id"] and low["data"]["type"] == "credits"
    listed = admin.http.get(f"/v1/accounts/{aid}/alerts").json()["data"]
    assert [(r["id"], r["state"]) for r in listed] == [(rule["id"], "ok")]
    first = admin.http.get("/v1/events", params={"account": aid, "limit": "1"}).json()
    assert first["has_more"] and first["data"][0]["type"] == "balance.recovered"
    removed = admin.http.delete(f"/v1/alerts/{rule['id']}")
    assert removed.status_code == 200
    assert admin.http.delete(f"/v1/alerts/{rule['id']}").status_code == 404
    assert admin.http.get(f"/v1/accounts/{aid}/alerts").json()["data"] == []


def test_bad_rules_are_refused(admin: Admin) -> None:
    aid = admin.account()["id"]
    url = f"/v1/accounts/{aid}/alerts"
    for body, parameter in (
        ({}, "below"),
        ({"below": "x"}, "below"),
        ({"below": "1", "hysteresis": "-1"}, "hysteresis"),
        ({"below": "1", "mode": "sandbox"}, "mode"),
        ({"below": "1", "extra": "1"}, "extra"),
    ):
        r = admin.http.post(url, json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == parameter, body
    for _ in range(20):
        assert admin.http.post(url, json={"below": "1"}).status_code == 201
    r = admin.http.post(url, json={"below": "1"})
    assert r.status_code == 422 and "at most 20" in r.json()["errors"][0]["description"]
    missing = admin.http.post("/v1/accounts/acc_00000000000000000000000000/alerts", json={})
    assert missing.status_code in (404, 422)


def test_alerts_from_the_cli(database_url: str) -> None:
    import json

    def run(*args: str) -> dict:  # type: ignore[type-arg]
        result = cli(*args, "--json", db_url=database_url)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    aid = run("accounts", "create", "--payment", "postpaid", "--type", "euros",
              "--credit-limit", "10")["id"]  # fmt: skip
    rule = run("alerts", "add", aid, "--below", "-5", "--hysteresis", "1")
    assert rule["below"] == "-5" and rule["state"] == "ok"
    run("charge", aid, "6")  # -6: low
    run("charge", aid, "4")  # -10: the credit limit
    listed = run("alerts", "list", aid)["data"]
    assert [r["state"] for r in listed] == ["low"]
    events = run("events", "list", "--account", aid)["data"]
    assert [e["type"] for e in reversed(events)] == ["balance.low", "credit_limit.reached"]
    assert events[0]["data"]["credit_limit"] == "10"
    table = cli("events", "list", db_url=database_url)
    assert "credit_limit.reached" in table.stdout
    assert run("alerts", "remove", rule["id"])["id"] == rule["id"]
    assert run("alerts", "list", aid)["data"] == []
