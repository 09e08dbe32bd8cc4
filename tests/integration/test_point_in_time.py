"""GET /v1/accounts/{id}/balance?at= (now without it): answered from running balances by one
index seek."""

from __future__ import annotations

import json
import sqlite3

import psycopg
import pytest

from birdbalance.settings import Settings
from birdbalance.storage import open_store
from birdbalance.storage.history import BALANCE_AT_SQL
from tests.databases import raw_execute
from tests.servers import Admin

ENTRIES = 200_000
ACCOUNT = "acc_01JD3Z8Q6W6B7Y2M0N4R5T8V9X"


def test_balance_at_over_http(admin: Admin) -> None:
    aid = admin.account("prepaid", "pounds")["id"]
    stamps = [admin.topup(aid, amount)["entry"]["created_at"] for amount in ("1", "2.5", "4")]
    charge = admin.post(aid, "charges", amount="0.5").json()["entry"]["created_at"]
    url = f"/v1/accounts/{aid}/balance"
    expected = ["1", "3.5", "7.5"]
    for stamp, amount in zip(stamps, expected, strict=True):
        r = admin.http.get(url, params={"at": stamp})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["amount"], body["entry_at"]) == (amount, stamp)
    assert admin.http.get(url, params={"at": charge}).json()["amount"] == "7"
    before = admin.http.get(url, params={"at": "2001-02-03T04:05:06+02:00"}).json()
    assert before == {
        "account_id": aid,
        "mode": "live",
        "at": "2001-02-03T02:05:06.000000Z",
        "payment": "prepaid",
        "type": "pounds",
        "amount": "0",
        "seq": 0,
        "entry_at": None,
    }
    sandbox = admin.http.get(url, params={"at": charge, "mode": "test"}).json()
    assert sandbox["amount"] == "0" and sandbox["mode"] == "test"
    for bad in ("yesterday", "2026-01-01", "2026-01-01T00:00:00", "x" * 100):
        r = admin.http.get(url, params={"at": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "at", bad
    now = admin.http.get(url)  # without at: the balance now, that of the last entry
    assert now.status_code == 200, now.text
    assert (now.json()["amount"], now.json()["entry_at"], now.json()["seq"]) == ("7", charge, 4)
    missing = admin.http.get("/v1/accounts/acc_00000000000000000000000000/balance?at=" + charge)
    assert missing.status_code == 404


def _fill(database_url: str) -> None:
    """One account with ENTRIES entries, one second apart, written straight to the table."""
    store = open_store(Settings(database_url=database_url))
    store.migrate()
    store.close()
    raw_execute(
        database_url,
        "INSERT INTO accounts (id, name, payment, asset, scale, credit_limit_minor, metadata,"
        f" created_at) VALUES ('{ACCOUNT}', 'big', 'prepaid', 'EUR', 6, NULL, '{{}}',"
        " '2026-01-01T00:00:00.000000Z')",
    )
    if database_url.startswith("sqlite:"):
        series = (
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ENTRIES})"
            " INSERT INTO entries (id, account_id, mode, seq, kind, amount_minor,"
            " balance_after_minor, metadata, created_at)"
            f" SELECT printf('ent_%026d', i), '{ACCOUNT}', 'live', i, 'topup', 1, i, '{{}}',"
            " strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2026-01-01', '+' || i || ' seconds')"
            " FROM n"
        )
    else:
        series = (
            "INSERT INTO entries (id, account_id, mode, seq, kind, amount_minor,"
            " balance_after_minor, metadata, created_at)"
            f" SELECT 'ent_' || lpad(i::text, 26, '0'), '{ACCOUNT}', 'live', i, 'topup', 1, i,"
            " '{}', timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second'"
            f" FROM generate_series(1, {ENTRIES}) AS i"
        )
    raw_execute(database_url, series)
    for mode, balance in (("live", ENTRIES), ("test", 0)):
        raw_execute(
            database_url,
            f"INSERT INTO balances (account_id, mode, balance_minor, seq, held_minor)"
            f" VALUES ('{ACCOUNT}', '{mode}', {balance}, {balance}, 0)",
        )


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_the_lookup_is_one_index_seek_on_a_big_ledger(database_url: str) -> None:
    _fill(database_url)
    at = "2026-01-02T03:46:40.000000Z"  # 100,000 seconds in: entry 100,000
    args = (ACCOUNT, "live", at)
    if database_url.startswith("sqlite:"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + BALANCE_AT_SQL, args))
        conn.close()
        assert "USING INDEX entries_at" in plan or "USING COVERING INDEX entries_at" in plan
        assert "SCAN" not in plan and "TEMP B-TREE" not in plan, plan
    else:
        with psycopg.connect(database_url, autocommit=True) as pg:
            pg.execute("ANALYZE entries")
            sql = BALANCE_AT_SQL.replace("?", "%s")
            plan = pg.execute("EXPLAIN (FORMAT JSON) " + sql, args).fetchone()[0]  # type: ignore[index]
        text = json.dumps(plan)
        top = plan[0]["Plan"]
        assert top["Node Type"] == "Limit", text
        child = top["Plans"][0]
        assert child["Node Type"] in {"Index Scan", "Index Only Scan"}, text
        assert child["Index Name"] == "entries_at" and child["Scan Direction"] == "Backward"
        assert "Seq Scan" not in text and "Sort" not in text
    store = open_store(Settings(database_url=database_url))
    try:
        from birdbalance.ledger import Mode

        found = store.balance_at(ACCOUNT, Mode.LIVE, at)
        assert (found.balance_minor, found.seq, found.entry_at) == (100_000, 100_000, at)
        assert store.balance_at(ACCOUNT, Mode.LIVE, "2025-12-31T23:59:59Z").seq == 0
    finally:
        store.close()
