"""The dashboard over real HTTP: sign-in, sessions, CSRF, what each viewer may see."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import ADMIN_TOKEN, Admin, Server

FORM_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)


def sign_in(client: httpx.Client, credential: str, **headers: str) -> httpx.Response:
    """Sign in the way a browser does: load the form, post it back with its token."""
    form = client.get("/dashboard/sign-in")
    assert form.status_code == 200, form.text
    match = FORM_CSRF.search(form.text)
    assert match is not None
    return client.post(
        "/dashboard/sign-in",
        data={"credential": credential, "csrf": match[1]},
        headers={"Origin": str(client.base_url).rstrip("/"), **headers},
    )


def _page_csrf(text: str) -> str:
    match = FORM_CSRF.search(text)
    assert match is not None
    return match[1]


def _links(text: str, rel: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(rf'<a href="([^"]+)" rel="{rel}"', text)]


@pytest.fixture
def viewer(server: Server) -> Iterator[httpx.Client]:
    with _client(server) as client:
        yield client


def _account_with_key(admin: Admin, mode: str = "live") -> tuple[str, str]:
    account = admin.account(name="Dash Co")["id"]
    admin.topup(account, "1000", mode=mode)
    return account, admin.key(account, mode)["key"]


def test_a_key_signs_in_to_its_own_ledger_only(
    server: Server, admin: Admin, viewer: httpx.Client
) -> None:
    account, key = _account_with_key(admin)
    other, _ = _account_with_key(admin)
    signed = sign_in(viewer, key)
    assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert key not in cookie
    home = viewer.get("/dashboard")
    assert home.status_code == 303 and home.headers["location"].endswith(account)
    page = viewer.get(f"/dashboard/accounts/{account}")
    assert page.status_code == 200
    assert '<span class="figure">1,000</span>' in page.text
    for header in ("content-security-policy", "x-frame-options", "server-timing"):
        assert header in page.headers
    assert page.headers["cache-control"] == "no-store"
    # Never a secret in the page: not the key, not the admin token.
    assert key not in page.text and ADMIN_TOKEN not in page.text
    # Another account, the same account's other ledger, the admin's list: not for this key.
    assert viewer.get(f"/dashboard/accounts/{other}").status_code == 404
    assert viewer.get(f"/dashboard/accounts/{account}?mode=test").status_code == 404
    assert (
        viewer.get(f"/dashboard/accounts/{other}/statement.csv?from=2026-01-01").status_code == 404
    )
    assert viewer.get("/dashboard/accounts/not-an-id").status_code == 404


def test_failed_sign_ins_say_nothing_and_forged_forms_are_refused(
    server: Server, admin: Admin, viewer: httpx.Client
) -> None:
    _, key = _account_with_key(admin)
    unknown = sign_in(viewer, "A" * 25)
    garbage = sign_in(viewer, "not a key")
    assert unknown.status_code == garbage.status_code == 401
    assert "is not valid" in unknown.text and "is not valid" in garbage.text
    assert "set-cookie" not in unknown.headers or "bb_session=" not in unknown.headers["set-cookie"]
    # Another site's page posting the form: refused by Origin and by Sec-Fetch-Site.
    assert sign_in(viewer, key, Origin="https://evil.example").status_code == 403
    assert sign_in(viewer, key, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    # A form without the token its page was given.
    viewer.get("/dashboard/sign-in")
    bare = viewer.post("/dashboard/sign-in", data={"credential": key, "csrf": "x" * 43})
    assert bare.status_code == 403 and "expired" in bare.text
    fresh = _client(server)
    no_cookie = fresh.post("/dashboard/sign-in", data={"credential": key, "csrf": "x"})
    assert no_cookie.status_code == 403
    huge = fresh.post("/dashboard/sign-in", content=b"credential=" + b"a" * 10_000)
    assert huge.status_code == 400
    fresh.close()
    # Without a session, or with a forged one, every page leads to the sign-in form.
    for path in ("/dashboard", "/dashboard/accounts/acc_01JD3Z8Q6W6B7Y2M0N4R5T8V9X"):
        assert viewer.get(path).headers["location"] == "/dashboard/sign-in"
    viewer.cookies.set("bb_session", "eyJyIjoiYWRtaW4ifQ.forged", path="/dashboard")
    assert viewer.get("/dashboard").headers["location"] == "/dashboard/sign-in"


def test_revoking_the_key_ends_its_sessions(
    server: Server, admin: Admin, viewer: httpx.Client
) -> None:
    account, _ = _account_with_key(admin)
    key = admin.key(account)
    assert sign_in(viewer, key["key"]).status_code == 303
    assert viewer.get(f"/dashboard/accounts/{account}").status_code == 200
    assert admin.http.delete(f"/v1/keys/{key['id']}").status_code == 200
    assert viewer.get(f"/dashboard/accounts/{account}").headers["location"].endswith("sign-in")


def test_sign_out_needs_the_page_token_and_ends_the_session(
    server: Server, admin: Admin, viewer: httpx.Client
) -> None:
    account, key = _account_with_key(admin)
    sign_in(viewer, key)
    page = viewer.get(f"/dashboard/accounts/{account}")
    origin = {"Origin": server.url}
    forged = viewer.post("/dashboard/sign-out", data={"csrf": "nope"}, headers=origin)
    assert forged.status_code == 403
    assert viewer.get(f"/dashboard/accounts/{account}").status_code == 200
    out = viewer.post("/dashboard/sign-out", data={"csrf": _page_csrf(page.text)}, headers=origin)
    assert out.status_code == 303 and "bb_session=" in out.headers["set-cookie"]
    assert viewer.get(f"/dashboard/accounts/{account}").status_code == 303


def test_the_admin_sees_every_account_with_search(
    server: Server, admin: Admin, viewer: httpx.Client
) -> None:
    named = admin.account(name="Zebra Findable Ltd")["id"]
    admin.topup(named, "5", mode="test")
    assert sign_in(viewer, ADMIN_TOKEN).status_code == 303
    found = viewer.get("/dashboard", params={"q": "zebra findable"})
    assert found.status_code == 200 and named in found.text and ADMIN_TOKEN not in found.text
    assert viewer.get("/dashboard", params={"q": "no such name at all"}).text.count("<tr>") == 2
    test_ledger = viewer.get(f"/dashboard/accounts/{named}", params={"mode": "test"})
    assert test_ledger.status_code == 200 and '<span class="figure">5</span>' in test_ledger.text
    live_ledger = viewer.get(f"/dashboard/accounts/{named}")
    assert '<span class="figure">0</span>' in live_ledger.text
    assert "Postpaid:" not in live_ledger.text
    postpaid = admin.account("postpaid", "credits", name="Later Pays")["id"]
    assert admin.post(postpaid, "charges", amount="7").status_code == 201
    owed = viewer.get(f"/dashboard/accounts/{postpaid}")
    assert '<span class="figure">-7</span>' in owed.text and "Postpaid:" in owed.text


def test_entries_page_and_filter_by_index(
    server: Server, admin: Admin, viewer: httpx.Client
) -> None:
    account, key = _account_with_key(admin)
    for n in range(120):
        r = admin.post(account, "charges", amount="0.5", reference=f"msg-{n % 3}")
        assert r.status_code == 201, r.text
    sign_in(viewer, key)
    url: str | None = f"/dashboard/accounts/{account}"
    seen: list[str] = []
    pages = 0
    while url is not None:
        page = viewer.get(url)
        assert page.status_code == 200
        seen += re.findall(r"<code>(ent_[0-9A-Z]{26})</code>", page.text)
        url = (_links(page.text, "next") or [None])[0]
        pages += 1
    assert pages == 3 and len(seen) == len(set(seen)) == 121
    charges = viewer.get(f"/dashboard/accounts/{account}", params={"kind": "charge"})
    assert charges.text.count("<td>charge</td>") == 50 and "<td>topup</td>" not in charges.text
    by_ref = viewer.get(f"/dashboard/accounts/{account}", params={"reference": "msg-1"})
    assert by_ref.text.count("<td>msg-1</td>") == 40 and "msg-2" not in by_ref.text
    future = viewer.get(f"/dashboard/accounts/{account}", params={"from": "2999-01-01"})
    assert "No entries match these filters" in future.text
    bad = viewer.get(f"/dashboard/accounts/{account}", params={"from": "yesterday"})
    assert bad.status_code == 422 and "from must be a date" in bad.text
    bad_kind = viewer.get(f"/dashboard/accounts/{account}", params={"kind": "gift"})
    assert bad_kind.status_code == 422 and "kind must be" in bad_kind.text


def test_chart_data_and_alerts_without_webhook_urls(
    server: Server, admin: Admin, viewer: httpx.Client
) -> None:
    account, key = _account_with_key(admin)
    rule = admin.http.post(f"/v1/accounts/{account}/alerts", json={"below": "900"})
    assert rule.status_code == 201
    hook_url = "http://127.0.0.1:9/secret-path-token"
    hook = admin.http.post("/v1/webhooks", json={"url": hook_url, "account": account})
    assert hook.status_code == 201, hook.text
    try:
        assert admin.post(account, "charges", amount="200").status_code == 201
        sign_in(viewer, key)
        page = viewer.get(f"/dashboard/accounts/{account}", params={"days": "7"})
        assert page.status_code == 200
        alerts = page.text[page.text.index("alerts-title") :]
        assert "balance.low" in alerts, alerts
        assert re.search(r"pending</span> after \d+ attempt", alerts), alerts
        assert hook_url not in page.text and "secret-path-token" not in page.text
        daily = re.search(r'id="daily-data">(.*?)</script>', page.text, re.S)
        assert daily is not None
        import json

        days = json.loads(daily[1])
        assert len(days) == 7 and days[-1]["balance"] == "800" and days[-1]["usage"] == "200"
    finally:
        admin.http.delete(f"/v1/webhooks/{hook.json()['id']}")


def test_statement_download_matches_the_statement_api(
    server: Server, admin: Admin, viewer: httpx.Client
) -> None:
    account, key = _account_with_key(admin)
    for n in range(7):
        admin.post(account, "charges", amount=f"1.{n}", reference=f"=cmd{n}")
    sign_in(viewer, key)
    download = viewer.get(
        f"/dashboard/accounts/{account}/statement.csv", params={"from": "2026-01-01"}
    )
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(download.text)))
    by_kind = {r[2]: r for r in rows[1:]}
    api = admin.http.get(
        f"/v1/accounts/{account}/statement", params={"from": "2026-01-01T00:00:00Z"}
    ).json()
    assert by_kind["closing_balance"][4] == api["closing_balance"]
    assert by_kind["total_charge"][3] == api["totals"]["charge"]
    assert all(not r[5].startswith("=") for r in rows)
    bad = viewer.get(f"/dashboard/accounts/{account}/statement.csv", params={"from": "soon"})
    assert bad.status_code == 422 and "from must be a date" in bad.text
    backwards = viewer.get(
        f"/dashboard/accounts/{account}/statement.csv",
        params={"from": "2026-02-01", "to": "2026-01-01"},
    )
    assert backwards.status_code == 422


def test_static_files_are_served_from_the_package(viewer: httpx.Client) -> None:
    for path in ("vendor/uPlot.iife.min.js", "vendor/uPlot.min.css", "dashboard.js"):
        r = viewer.get(f"/dashboard/static/{path}")
        assert r.status_code == 200 and len(r.content) > 500
    assert viewer.get("/dashboard/static/../templates/base.html").status_code == 404
