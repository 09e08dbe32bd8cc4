"""The forecast over HTTP and on the dashboard: the last 7 and 30 days' pace, and the
day the balance runs out at each."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tests.servers import Admin, Server


def test_the_forecast(server: Server, admin: Admin) -> None:
    account = admin.account("prepaid", "euros")["id"]
    admin.topup(account, "100")
    assert admin.post(account, "charges", amount="7").status_code == 201
    today = datetime.now(UTC).date()
    r = admin.http.get(f"/v1/accounts/{account}/forecast")
    assert r.status_code == 200, r.text
    body = r.json()
    if date.fromisoformat(body["as_of"]) != today:  # midnight passed mid-test
        today = date.fromisoformat(body["as_of"])
    assert (body["spendable"], body["type"], body["mode"]) == ("93", "euros", "live")
    week, month = body["paces"]
    # 7 spent today: 1 a day over the week (93 * 7 // 7 days), 0.233333 over the month.
    assert (week["days"], week["per_day"]) == (7, "1")
    assert week["runs_out_on"] == (today + timedelta(days=93)).isoformat()
    assert (month["days"], month["per_day"]) == (30, "0.233333")
    assert month["runs_out_on"] == (today + timedelta(days=93 * 30 // 7)).isoformat()
    # A pending hold is not spendable; a quiet test ledger never runs out.
    hold = admin.http.post(
        f"/v1/accounts/{account}/holds", json={"amount": "3"}, headers={"Idempotency-Key": "h"}
    )
    assert hold.status_code == 201
    assert admin.http.get(f"/v1/accounts/{account}/forecast").json()["spendable"] == "90"
    test = admin.http.get(f"/v1/accounts/{account}/forecast", params={"mode": "test"}).json()
    assert [p["runs_out_on"] for p in test["paces"]] == [None, None]
    postpaid = admin.account("postpaid", "euros")["id"]
    assert admin.post(postpaid, "charges", amount="5").status_code == 201
    unlimited = admin.http.get(f"/v1/accounts/{postpaid}/forecast").json()
    assert unlimited["spendable"] is None
    assert [p["runs_out_on"] for p in unlimited["paces"]] == [None, None]
    assert admin.http.get("/v1/accounts/acc_nope/forecast").status_code == 404
