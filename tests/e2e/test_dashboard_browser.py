"""The dashboard in a real browser: sign in, watch the balance move, page, download."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.servers import Admin, Server, cli

pytestmark = pytest.mark.e2e


def _sign_in(page: Any, server: Server, credential: str) -> None:
    page.goto(f"{server.url}/dashboard")
    assert page.url.endswith("/dashboard/sign-in")
    page.get_by_label("Access key or admin token").fill(credential)
    page.get_by_role("button", name="Sign in").click()


def _number(text: str) -> Decimal:
    """A grouped amount as the page shows it ("1,234.5", "-3")."""
    return Decimal("".join(c for c in text if c in "-.0123456789"))


def _account(admin: Admin, name: str) -> tuple[str, str]:
    account = admin.account(name=name)["id"]
    admin.topup(account, "250")
    return account, admin.key(account)["key"]


def test_sign_in_see_the_balance_move_and_page_entries(
    page: Any, dashboard_server: Server, e2e_admin: Admin
) -> None:
    account, key = _account(e2e_admin, "Browser One")
    for n in range(60):
        assert (
            e2e_admin.post(account, "charges", amount="1", reference=f"sms-{n}").status_code == 201
        )
    _sign_in(page, dashboard_server, key)
    page.wait_for_url(f"**/dashboard/accounts/{account}")
    balance = page.get_by_test_id("balance")
    assert balance.inner_text().split() == ["190", "euros"]
    # 60 spent today: at the last 7 days' pace 190 lasts 190 * 7 // 60 = 22 days.
    forecast = page.get_by_test_id("forecast").locator("li").all_inner_texts()
    runs_out = (datetime.now(UTC).date() + timedelta(days=22)).isoformat()
    assert forecast[0].startswith("At the last 7 days' pace"), forecast
    assert forecast[0].endswith(f"this balance runs out on {runs_out}."), forecast
    assert len(forecast) == 2 and forecast[1].startswith("At the last 30 days' pace")
    # Both charts drew, one point per day of the default 30.
    for chart in ("#balance-chart", "#usage-chart"):
        assert page.locator(chart).get_attribute("data-drawn") == "30"
        assert page.locator(f"{chart} canvas").count() == 1
        # Away from the cursor the legend shows the last day, never uPlot's "--".
        legend = page.locator(f"{chart} .u-legend .u-value").all_inner_texts()
        assert legend and "--" not in legend, legend
    assert page.locator("#balance-chart .u-legend .u-value").last.inner_text() == "190"
    # The days table adds up: each day's balance is the day before's plus its top-ups,
    # adjustments and transfers, less its usage.
    page.get_by_text("The same days as a table").click()
    headers = page.locator("#days-caption").locator("xpath=..").locator("thead th")
    assert headers.all_inner_texts() == [
        "Day",
        "Top-ups",
        "Usage",
        "Adjustments",
        "Transfers",
        "Balance",
        "Entries",
    ]
    caption = page.locator("#days-caption").inner_text()
    before = _number(caption.split("opening balance ")[1].split(".")[0])
    rows = page.locator("#days-caption").locator("xpath=..").locator("tbody tr")
    for cells in reversed(
        [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    ):
        topups, usage, adjustments, transfers, balance = (_number(c) for c in cells[1:6])
        assert before + topups - usage + adjustments + transfers == balance, cells
        before = balance

    # A charge posted through the API shows on the next load.
    assert e2e_admin.post(account, "charges", amount="12.5").status_code == 201
    page.reload()
    assert page.get_by_test_id("balance").inner_text().split() == ["177.5", "euros"]

    # 62 entries: a first page of 50, then the rest behind "Older entries".
    rows = page.locator("table.entries tbody tr")
    assert rows.count() == 50
    page.get_by_role("link", name="Older entries").click()
    assert rows.count() == 12
    assert rows.last.locator("td").nth(1).inner_text() == "topup"
    page.get_by_role("link", name="Newest entries").click()
    assert rows.count() == 50

    # Filter by reference with the keyboard: type, then Enter submits.
    page.get_by_label("Reference").fill("sms-7")
    page.get_by_label("Reference").press("Enter")
    assert rows.count() == 1 and "sms-7" in rows.first.inner_text()
    page.get_by_label("Type").select_option("topup")
    page.get_by_role("button", name="Filter").click()
    assert "No entries match these filters" in rows.first.inner_text()
    page.get_by_role("link", name="90 days").click()
    assert page.locator("#balance-chart").get_attribute("data-drawn") == "90"
    assert page.problems == []


def test_statement_download_adds_up(
    page: Any, dashboard_server: Server, e2e_admin: Admin, tmp_path: Any
) -> None:
    account, key = _account(e2e_admin, "Browser Two")
    for amount in ("3.25", "1.5", "10"):
        assert e2e_admin.post(account, "charges", amount=amount).status_code == 201
    _sign_in(page, dashboard_server, key)
    page.get_by_label("From (UTC)", exact=True).last.fill("2026-01-01")
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download CSV").click()
    download = caught.value
    assert download.suggested_filename.startswith(f"statement-{account}-live-")
    path = tmp_path / "statement.csv"
    download.save_as(path)
    rows = list(csv.reader(io.StringIO(path.read_text())))
    by_kind = {row[2]: row for row in rows[1:]}
    entries = [row for row in rows[1:] if row[1].startswith("ent_")]
    opening = Decimal(by_kind["opening_balance"][4])
    closing = Decimal(by_kind["closing_balance"][4])
    assert opening + sum(Decimal(row[3]) for row in entries) == closing == Decimal("235.25")
    assert Decimal(by_kind["total_charge"][3]) == Decimal("-14.75")
    assert Decimal(by_kind["total_topup"][3]) == Decimal("250")
    assert page.problems == []


def test_keyboard_only_sign_in_and_a_phone_screen(
    page: Any, dashboard_server: Server, e2e_admin: Admin
) -> None:
    account, key = _account(e2e_admin, "Browser Three")
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(f"{dashboard_server.url}/dashboard/sign-in")
    # The skip link comes first, then the one field, which has focus already.
    assert page.evaluate("document.activeElement.id") == "credential"
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/dashboard/accounts/{account}")
    # Nothing wider than the phone: wide tables scroll inside their own region.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.get_by_test_id("balance").is_visible()
    # Every form field has a label.
    unlabeled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select')]
           .filter(el => !el.labels || el.labels.length === 0).map(el => el.name)"""
    )
    assert unlabeled == []
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    # Sign out (a POST with the page's token) ends the session.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/dashboard/sign-in")
    page.goto(f"{dashboard_server.url}/dashboard/accounts/{account}")
    assert page.url.endswith("/dashboard/sign-in")


def test_a_wrong_key_is_refused_in_the_page(
    page: Any, dashboard_server: Server, e2e_admin: Admin
) -> None:
    _sign_in(page, dashboard_server, "WrongWrongWrongWrongWrong")
    alert = page.get_by_role("alert")
    assert "not valid" in alert.inner_text()
    assert page.get_by_label("Access key or admin token").input_value() == ""


def test_a_reseller_sees_its_sub_accounts_forecasts_and_breakdowns(
    page: Any, dashboard_server: Server, e2e_admin: Admin, tmp_path: Any
) -> None:
    """A reseller signs in with a token confined to its account: it sees its sub-accounts
    the lowest first, drills down, reads a shared one's forecast, and breaks its usage
    down by country in the page and as CSV; the platform above it stays out of sight."""
    admin = e2e_admin
    platform = admin.account(name="Platform")["id"]
    reseller = admin.account(parent=platform, name="Reseller One")["id"]
    low = admin.account(parent=reseller, name="Low Ltd")["id"]
    rich = admin.account(parent=reseller, name="Rich Ltd")["id"]
    shared = admin.account(
        parent=reseller,
        name="Shared Ltd",
        balance="shared",
        spending_limit={"amount": "20", "period": "month"},
    )["id"]
    admin.topup(reseller, "100")
    for account, amount in ((low, "6"), (rich, "80")):
        assert admin.transfer(reseller, account, amount).status_code == 201
    assert admin.post(low, "charges", amount="5").status_code == 201
    for country, amount in (("NL", "3"), ("DE", "1.5"), ("NL", "2")):
        charged = admin.post(shared, "charges", amount=amount, metadata={"country": country})
        assert charged.status_code == 201, charged.text
    made = cli("tokens", "create", "--name", "reseller-one", "--scope", "read", "--account",
               reseller, "--json", db_url=dashboard_server.db_url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    _sign_in(page, dashboard_server, json.loads(made.stdout)["token"])
    page.wait_for_url("**/dashboard")
    assert "Platform" not in page.locator("main").inner_text()
    page.get_by_role("link", name=reseller).first.click()
    page.wait_for_url(f"**/dashboard/accounts/{reseller}")
    rows = page.get_by_test_id("children").locator("tbody tr")
    names = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
    assert names == ["Low Ltd", "Shared Ltd", "Rich Ltd"], names
    spendable = [_number(rows.nth(i).locator("td").nth(3).inner_text()) for i in range(3)]
    # Low: 6 - 5; Shared: the reseller's 100 - 86 - 6.5 (its limit leaves 13.5); Rich: 80.
    assert spendable == [Decimal(1), Decimal("7.5"), Decimal(80)], spendable
    usage = [_number(rows.nth(i).locator("td").nth(5).inner_text()) for i in range(3)]
    assert usage == [Decimal(5), Decimal("6.5"), Decimal(0)], usage
    # Drill down into the shared sub-account: what it may spend, and when it runs out.
    page.get_by_role("link", name=shared).click()
    page.wait_for_url(f"**/dashboard/accounts/{shared}")
    assert page.get_by_test_id("balance").inner_text().split() == ["7.5", "euros"]
    assert "Used this period" in page.get_by_test_id("shared").inner_text()
    # 6.5 used today: at the last 7 days' pace 7.5 lasts 7.5 * 7 // 6.5 = 8 days.
    forecast = page.get_by_test_id("forecast").locator("li").all_inner_texts()
    runs_out = (datetime.now(UTC).date() + timedelta(days=8)).isoformat()
    assert forecast[0].endswith(f"this balance runs out on {runs_out}."), forecast
    # Its usage by country, in the page and as CSV.
    page.get_by_label("Metadata key").fill("country")
    page.get_by_role("button", name="Break down").click()
    table = page.get_by_test_id("usage").locator("tbody tr")
    found = [table.nth(i).locator("td").all_inner_texts() for i in range(table.count())]
    assert found == [["NL", "5", "2"], ["DE", "1.5", "1"]], found
    with page.expect_download() as caught:
        page.get_by_role("link", name="Download as CSV").click()
    path = tmp_path / "usage.csv"
    caught.value.save_as(path)
    lines = list(csv.reader(io.StringIO(path.read_text())))
    assert [row[:2] for row in lines[1:]] == [["NL", "5"], ["DE", "1.5"]], lines
    assert page.problems == []
    # Above and beside its subtree there is nothing to see.
    response = page.goto(f"{dashboard_server.url}/dashboard/accounts/{platform}")
    assert response is not None and response.status == 404
    assert "Not found" in page.locator("main").inner_text()
