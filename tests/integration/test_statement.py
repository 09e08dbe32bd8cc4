"""Statements: opening + entries = closing, always, in JSON pages and in CSV."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from birdbalance.errors import NotEnoughBalance
from birdbalance.ledger import EntryKind, Mode, Payment
from birdbalance.records import Idempotency, NewAccount, NewEntry
from birdbalance.service import Service
from birdbalance.settings import Settings
from birdbalance.shapes import render
from birdbalance.storage import MAX_WRITE_BATCH, Store, open_store
from tests.servers import ADMIN_TOKEN, Admin, Server

E = 1_000_000


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(Settings(database_url=database_url))
    s.migrate()
    yield s
    s.close()


def _entries(store: Store, account: str, count: int, rng: random.Random) -> list[str]:
    """Post ``count`` random entries; the creation time of each."""
    times = []
    for n in range(count):
        kind = EntryKind.TOPUP if rng.random() < 0.4 else EntryKind.CHARGE
        amount = rng.randint(1, 5 * E) if kind is EntryKind.TOPUP else rng.randint(1, E // 2)
        new = NewEntry(account, Mode.LIVE, kind, amount, None, f"r{n}", {})
        try:
            posted = store.append_entry(new, Idempotency(f"{account}-{n}", f"fp{n}"))
        except NotEnoughBalance:
            continue
        times.append(posted.entry.created_at)
    return times


def test_every_range_adds_up_and_pages_cover_it(store: Store) -> None:
    rng = random.Random(7)
    account = store.create_account(NewAccount(None, Payment.PREPAID, "EUR", 6, None, {}), None).id
    times = _entries(store, account, 120, rng)
    service = Service(store)
    for _ in range(25):
        a, b = sorted(rng.sample(range(len(times)), 2))
        start, end = times[a], times[b]
        first = render(
            service.statement(account, start=start, end=end, mode=None, cursor=None, limit="7")
        )
        rows, page = list(first["data"]), first
        while page["next_cursor"] is not None:
            page = render(
                service.statement(
                    account, start=start, end=end, mode=None, cursor=page["next_cursor"], limit="7"
                )
            )
            assert page["opening_balance"] == first["opening_balance"]
            rows += page["data"]
        # Every entry with start <= created_at < end, once, in order.
        assert [r["created_at"] for r in rows] == [t for t in times if start <= t < end]
        opening, closing = Decimal(first["opening_balance"]), Decimal(first["closing_balance"])
        assert opening + sum(Decimal(r["amount"]) for r in rows) == closing
        assert sum(Decimal(v) for v in first["totals"].values()) == closing - opening
        assert sum(first["counts"].values()) == len(rows)
        if rows:
            assert Decimal(rows[-1]["balance_after"]) == closing
        # The CSV says the same, row for row.
        _, chunks = service.statement_csv(account, start=start, end=end, mode=None)
        table = list(csv.reader(io.StringIO("".join(chunks))))
        assert table[0] == ["created_at", "id", "kind", "amount", "balance_after", "reference"]
        assert table[1][2:5] == ["opening_balance", "", first["opening_balance"]]
        assert [r[1] for r in table[2 : 2 + len(rows)]] == [r["id"] for r in rows]
        closing_row = table[2 + len(rows)]
        assert closing_row[2:5] == ["closing_balance", "", first["closing_balance"]]
        totals = {r[2].removeprefix("total_"): r[3] for r in table[3 + len(rows) :]}
        assert totals == first["totals"]


def test_a_csv_export_pages_through_a_big_range(store: Store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from birdbalance.service import exports, reports

    for module in (exports, reports):  # many reads for few rows
        monkeypatch.setattr(module, "CSV_PAGE_ROWS", 3)
    account = store.create_account(NewAccount(None, Payment.PREPAID, "EUR", 6, None, {}), None).id
    times = _entries(store, account, 20, random.Random(3))
    _, chunks = Service(store).statement_csv(account, start=times[0], end=None, mode=None)
    table = list(csv.reader(io.StringIO("".join(chunks))))
    ids = [r[1] for r in table if r[1].startswith("ent_")]
    assert len(ids) == len(times) == len(set(ids))
    opening, closing = Decimal(table[1][4]), Decimal(table[len(times) + 2][4])
    assert opening + sum(Decimal(r[3]) for r in table[2 : len(times) + 2]) == closing


def test_the_http_statement(server: Server, admin: Admin) -> None:
    aid = admin.account("prepaid", "euros")["id"]
    admin.topup(aid, "100")
    start = admin.http.get(f"/v1/accounts/{aid}").json()["created_at"]
    charged = admin.post(aid, "charges", amount="30", reference="=HYPERLINK(1)")
    assert charged.status_code == 201
    refund = admin.post(aid, "refunds", amount="5", charge=charged.json()["entry"]["id"])
    assert refund.status_code == 201, refund.text
    body = admin.http.get(f"/v1/accounts/{aid}/statement", params={"from": start}).json()
    assert (body["opening_balance"], body["closing_balance"]) == ("0", "75")
    assert body["totals"] == {
        "topup": "100",
        "charge": "-30",
        "refund": "5",
        "adjustment": "0",
        "transfer": "0",
    }
    assert [e["kind"] for e in body["data"]] == ["topup", "charge", "refund"]
    # CSV by parameter and by Accept, as a download, formulas defused.
    url = f"{server.url}/v1/accounts/{aid}/statement"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    by_param = httpx.get(url, params={"from": start, "format": "csv"}, headers=auth)
    by_accept = httpx.get(url, params={"from": start}, headers={**auth, "Accept": "text/csv"})
    for r in (by_param, by_accept):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert r.headers["content-disposition"].startswith(f'attachment; filename="statement-{aid}')
    rows = list(csv.reader(io.StringIO(by_param.text)))
    assert rows[3][5] == "'=HYPERLINK(1)"
    assert rows[5][2:5] == ["closing_balance", "", "75"]
    # Bad input: errors in the usual shape, before any CSV is started.
    for params, parameter in (
        ({}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2030-01-01T00:00:00Z", "to": "2029-01-01T00:00:00Z"}, "from"),
        ({"from": start, "format": "csv", "mode": "sandbox"}, "mode"),
    ):
        r = httpx.get(url, params=params, headers=auth)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["errors"][0]["parameter"] == parameter
    # The CLI gives the same file, and a summary.
    from tests.servers import cli

    out = cli("statement", aid, "--from", start, "--csv", db_url=server.db_url)
    assert out.returncode == 0, out.stderr
    assert list(csv.reader(io.StringIO(out.stdout)))[5][2:5] == ["closing_balance", "", "75"]
    summary = cli("statement", aid, "--from", start, db_url=server.db_url)
    assert "opening balance 0" in summary.stdout and "closing balance 75" in summary.stdout
    missing = httpx.get(
        f"{server.url}/v1/accounts/acc_01JD3Z8Q6W6B7Y2M0N4R5T8V9X/statement",
        params={"from": start, "format": "csv"},
        headers=auth,
    )
    assert missing.status_code == 404


def test_a_statement_reads_no_other_ledgers_entries(store: Store, database_url: str) -> None:
    """Every query of a statement reads only its own ledger's rows, even under the
    generic plans PostgreSQL switches prepared statements to (a time range once made it
    choose a parallel scan of every entry for the totals). Checked by running each of
    the statement's queries again with EXPLAIN ANALYZE and counting the rows read."""
    accounts = [
        store.create_account(NewAccount(None, Payment.PREPAID, "EUR", 6, None, {}), None).id
        for _ in range(60)
    ]
    batch = []
    for n, account in enumerate(accounts):
        for i in range(50):
            new = NewEntry(account, Mode.LIVE, EntryKind.TOPUP, 1, None, None, {})
            batch.append((new, Idempotency(f"fill-{n}-{i}", f"fp-{n}-{i}")))
    for start in range(0, len(batch), MAX_WRITE_BATCH):
        store.append_entries(batch[start : start + MAX_WRITE_BATCH])
    mine = accounts[30]
    queries: list[tuple[str, tuple[object, ...]]] = []
    execute = store._execute  # type: ignore[attr-defined]

    def spy(conn, sql, args=()):  # type: ignore[no-untyped-def]
        queries.append((sql, tuple(args)))
        return execute(conn, sql, args)

    store._execute = spy  # type: ignore[attr-defined]
    statement = store.statement(mine, Mode.LIVE, "2000-01-01", "2999-01-01", 0, 20)
    store._execute = execute  # type: ignore[attr-defined]
    assert sum(statement.counts.values()) == 50 and len(statement.entries) == 20
    entry_queries = [(q, a) for q, a in queries if " entries" in q]
    assert len(entry_queries) >= 3, queries
    if database_url.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        for sql, args in entry_queries:
            plan = " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
            assert "SCAN entries" not in plan, (sql, plan)
        conn.close()
        return
    import psycopg
    import psycopg.sql

    with psycopg.connect(database_url, autocommit=True) as pg:
        pg.execute("ANALYZE")
        pg.execute("SET plan_cache_mode = force_generic_plan")
        for n, (sql, args) in enumerate(entry_queries):
            marks = sql
            for i in range(len(args)):
                marks = marks.replace("?", f"${i + 1}", 1)
            pg.execute(f"PREPARE q{n} AS {marks}")
            params = ", ".join(psycopg.sql.Literal(a).as_string(pg) for a in args)
            plan = pg.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE q{n}({params})").fetchone()
            nodes = [plan[0][0]["Plan"]]  # type: ignore[index]
            while nodes:
                node = nodes.pop()
                read = node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
                removed = node.get("Rows Removed by Filter", 0)
                assert read + removed <= 60, (sql, node)
                nodes += node.get("Plans", [])
