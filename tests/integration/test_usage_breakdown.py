"""Usage broken down by a metadata key: over HTTP (JSON and CSV) and in the store, on
both engines, with its limits."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import birdbalance.storage.usage as usage_module
from birdbalance.ledger import EntryKind, Mode, Payment
from birdbalance.records import Idempotency, NewAccount, NewEntry
from birdbalance.settings import Settings
from birdbalance.storage import Store, open_store
from tests.servers import Admin, Server

#: Since yesterday: a breakdown covers at most 366 days.
SINCE = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_usage_by_country_over_http(server: Server, admin: Admin) -> None:
    account = admin.account()["id"]
    admin.topup(
        account,
        "100",
    )
    for amount, country in (("3", "NL"), ("2", "DE"), ("1.5", "NL"), ("4", None)):
        metadata = {"country": country, "channel": "sms"} if country else {"channel": "sms"}
        r = admin.post(account, "charges", amount=amount, metadata=metadata)
        assert r.status_code == 201, r.text
    charge = admin.post(account, "charges", amount="1", metadata={"country": "NL"}).json()
    refund = admin.post(
        account, "refunds", amount="0.5", charge=charge["entry"]["id"], metadata={"country": "NL"}
    )
    assert refund.status_code == 201, refund.text
    r = admin.http.get(f"/v1/accounts/{account}/usage", params={"by": "country", "from": SINCE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["by"], body["type"], body["truncated"]) == ("country", "euros", False)
    # NL: 3 + 1.5 + 1 - 0.5; no value: 4 (the top-up is not usage); DE: 2.
    assert [(g["value"], g["usage"], g["entries"]) for g in body["data"]] == [
        ("NL", "5", 4),
        (None, "4", 1),
        ("DE", "2", 1),
    ]
    channel = admin.http.get(
        f"/v1/accounts/{account}/usage", params={"by": "channel", "from": SINCE}
    ).json()
    assert [(g["value"], g["usage"]) for g in channel["data"]] == [("sms", "10.5"), (None, "0.5")]
    exported = admin.http.get(
        f"/v1/accounts/{account}/usage",
        params={"by": "country", "from": SINCE, "format": "csv"},
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows == [
        ["country", "usage", "entries"],
        ["NL", "5", "4"],
        ["", "4", "1"],
        ["DE", "2", "1"],
    ]

    def refused(**params: str) -> tuple[int, str]:
        r = admin.http.get(f"/v1/accounts/{account}/usage", params=params)
        assert r.status_code in (404, 422), r.text
        return r.status_code, r.json()["errors"][0]["parameter"]

    assert refused(**{"from": SINCE}) == (422, "by")
    assert refused(by="x" * 41, **{"from": SINCE}) == (422, "by")
    assert refused(by="country") == (422, "from")
    assert refused(
        by="country", **{"from": "2020-01-01T00:00:00Z", "to": "2022-01-01T00:00:00Z"}
    ) == (422, "from")
    assert (
        admin.http.get(
            "/v1/accounts/acc_nope/usage", params={"by": "country", "from": SINCE}
        ).status_code
        == 404
    )


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(Settings(database_url=database_url))
    s.migrate()
    yield s
    s.close()


def test_odd_keys_and_the_group_limit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    account = store.create_account(NewAccount(None, Payment.POSTPAID, "EUR", 6, None, {}), None).id
    for n, value in enumerate(["a", "b", "c", "a"]):
        metadata = {'we"ird key.$[0]': value}
        new = NewEntry(account, Mode.LIVE, EntryKind.CHARGE, n + 1, None, None, metadata)
        store.append_entry(new, Idempotency(f"k{n}", f"fp{n}"))
    found = store.usage_by(account, Mode.LIVE, 'we"ird key.$[0]', "2000-01-01", "2999-01-01")
    assert [(g.value, g.usage_minor, g.entries) for g in found.groups] == [
        ("a", 5, 2),
        ("c", 3, 1),
        ("b", 2, 1),
    ]
    assert not found.truncated
    monkeypatch.setattr(usage_module, "MAX_USAGE_GROUPS", 2)
    cut = store.usage_by(account, Mode.LIVE, 'we"ird key.$[0]', "2000-01-01", "2999-01-01")
    assert [g.value for g in cut.groups] == ["a", "c"] and cut.truncated
