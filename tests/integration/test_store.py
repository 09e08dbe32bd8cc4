"""Each store on a real database: atomicity, append-only, idempotency, verify, holds."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest

import birdbalance.storage.accounts as accounts_module
from birdbalance.errors import IdempotencyConflict, NotEnoughBalance, NotFound
from birdbalance.keys import hash_key
from birdbalance.ledger import EntryKind, Mode, Payment
from birdbalance.records import DayTotal, EntryFilter, Idempotency, NewAccount, NewEntry, NewKey
from birdbalance.settings import Settings
from birdbalance.storage import Store, open_store
from birdbalance.storage.accounts import account_page_sql
from tests.databases import MIGRATIONS, REFUSED, fill_accounts, raw_execute

TEST_SECRET = b"s" * 32


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(Settings(database_url=database_url))
    assert s.schema_version() == (0, len(MIGRATIONS))
    assert s.migrate() == MIGRATIONS
    assert s.migrate() == []
    assert s.schema_version() == (len(MIGRATIONS), len(MIGRATIONS))
    yield s
    s.close()


def _account(store: Store, payment: Payment = Payment.PREPAID) -> str:
    return store.create_account(NewAccount(None, payment, "EUR", 6, None, {}), None).id


def _post(store: Store, account: str, kind: EntryKind, amount: int, key: str, **kw):  # type: ignore[no-untyped-def]
    new = NewEntry(
        account, kw.pop("mode", Mode.LIVE), kind, amount, kw.pop("refund_of", None), None, {}
    )
    return store.append_entry(new, Idempotency(key, kw.pop("fp", "fp-" + key)))


def test_entries_cannot_be_updated_or_deleted(store: Store, database_url: str) -> None:
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "a")
    with pytest.raises(REFUSED, match="append-only"):
        raw_execute(database_url, "UPDATE entries SET amount_minor = 1")
    with pytest.raises(REFUSED, match="append-only"):
        raw_execute(database_url, "DELETE FROM entries")
    assert store.verify() == []


def test_a_refused_write_changes_nothing(store: Store) -> None:
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "a")
    with pytest.raises(NotEnoughBalance):
        _post(store, account, EntryKind.CHARGE, 101, "b")
    got = store.get_account(account)
    assert got.live.balance_minor == 100 and got.live.entry_count == 1
    # The refused key was not consumed: it can carry a request that succeeds.
    assert _post(store, account, EntryKind.CHARGE, 100, "b").entry.balance_after_minor == 0


def test_idempotent_replay_and_conflict(store: Store) -> None:
    account = _account(store)
    first = _post(store, account, EntryKind.TOPUP, 100, "same")
    again = _post(store, account, EntryKind.TOPUP, 100, "same")
    assert again.replayed and again.entry == first.entry
    with pytest.raises(IdempotencyConflict):
        _post(store, account, EntryKind.TOPUP, 100, "same", fp="another request")
    assert store.get_account(account).live.entry_count == 1


def test_live_and_test_ledgers_never_mix(store: Store) -> None:
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "live")
    _post(store, account, EntryKind.TOPUP, 7, "test", mode=Mode.TEST)
    got = store.get_account(account)
    assert (got.live.balance_minor, got.test.balance_minor) == (100, 7)
    live_key = NewKey(account, Mode.LIVE, hash_key("L" * 25, TEST_SECRET), "…LLLL")
    test_key = NewKey(account, Mode.TEST, hash_key("test_" + "T" * 25, TEST_SECRET), "test_…TTTT")
    store.create_key(live_key, None)
    store.create_key(test_key, None)
    live_view = store.lookup_balance(hash_key("L" * 25, TEST_SECRET))
    test_view = store.lookup_balance(hash_key("test_" + "T" * 25, TEST_SECRET))
    assert live_view is not None and test_view is not None
    assert (live_view.balance_minor, test_view.balance_minor) == (100, 7)


def test_revoked_keys_find_nothing(store: Store) -> None:
    account = _account(store)
    key, _ = store.create_key(
        NewKey(account, Mode.LIVE, hash_key("K" * 25, TEST_SECRET), "…KKKK"), None
    )
    assert store.lookup_balance(hash_key("K" * 25, TEST_SECRET)) is not None
    store.revoke_key(key.id)
    assert store.lookup_balance(hash_key("K" * 25, TEST_SECRET)) is None
    assert store.revoke_key(key.id).revoked_at is not None


def test_refund_must_name_a_charge_of_the_same_ledger(store: Store) -> None:
    account, other = _account(store), _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "t")
    charge = _post(store, account, EntryKind.CHARGE, 60, "c").entry
    with pytest.raises(NotFound):
        _post(store, other, EntryKind.REFUND, 1, "r0", refund_of=charge.id)
    with pytest.raises(NotFound):
        _post(store, account, EntryKind.REFUND, 1, "r1", refund_of=charge.id, mode=Mode.TEST)
    _post(store, account, EntryKind.REFUND, 50, "r2", refund_of=charge.id)
    with pytest.raises(Exception, match=r"0\.00001 is left"):
        _post(store, account, EntryKind.REFUND, 11, "r3", refund_of=charge.id)
    assert store.verify() == []


def test_verify_finds_a_tampered_balance(store: Store, database_url: str) -> None:
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "a")
    assert store.verify() == []
    raw_execute(database_url, "UPDATE balances SET balance_minor = 101 WHERE mode = 'live'")
    problems = store.verify()
    assert any("entries sum to 100" in p for p in problems), problems


def test_pages_are_bounded_and_complete(store: Store) -> None:
    account = _account(store)
    for i in range(7):
        _post(store, account, EntryKind.TOPUP, 1, f"k{i}")
    seen, cursor = [], None
    while True:
        page = store.list_entries(account, Mode.LIVE, cursor, 3)
        assert len(page.items) <= 3
        seen += [e.seq for e in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [7, 6, 5, 4, 3, 2, 1]


def _at(database_url: str, moment: str) -> None:
    """The next entries are written at ``moment`` (entry times never go backwards)."""
    raw_execute(database_url, f"UPDATE balances SET last_entry_at = '{moment}'")


def _post_ref(store: Store, account: str, kind: EntryKind, amount: int, key: str, ref: str):  # type: ignore[no-untyped-def]
    new = NewEntry(account, Mode.LIVE, kind, amount, None, ref, {})
    return store.append_entry(new, Idempotency(key, "fp-" + key))


def test_entry_filters_are_index_ranges_that_page(store: Store, database_url: str) -> None:
    account = _account(store)
    _at(database_url, "2990-01-01T10:00:00.000000Z")
    for i in range(5):
        _post_ref(store, account, EntryKind.TOPUP, 10, f"t{i}", f"inv-{i % 2}")
    _at(database_url, "2990-01-02T10:00:00.000000Z")
    for i in range(4):
        _post_ref(store, account, EntryKind.CHARGE, 3, f"c{i}", f"msg-{i}")
    _at(database_url, "2990-01-04T00:00:00.000000Z")
    _post_ref(store, account, EntryKind.CHARGE, 1, "late", "msg-0")

    def seqs(filters: EntryFilter, limit: int = 2) -> list[int]:
        seen, cursor = [], None
        while True:
            page = store.list_entries(account, Mode.LIVE, cursor, limit, filters)
            assert len(page.items) <= limit
            seen += [e.seq for e in page.items]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    assert seqs(EntryFilter()) == list(range(10, 0, -1))
    assert seqs(EntryFilter(kind=EntryKind.CHARGE)) == [10, 9, 8, 7, 6]
    assert seqs(EntryFilter(kind=EntryKind.REFUND)) == []
    assert seqs(EntryFilter(reference="inv-1")) == [4, 2]
    assert seqs(EntryFilter(reference="msg-0", kind=EntryKind.CHARGE)) == [10, 6]
    day2 = EntryFilter(start="2990-01-02T00:00:00.000000Z", end="2990-01-03T00:00:00.000000Z")
    assert seqs(day2) == [9, 8, 7, 6]
    assert seqs(EntryFilter(start="2990-01-02T10:00:00.000000Z")) == [10, 9, 8, 7, 6]
    assert seqs(EntryFilter(end="2990-01-02T10:00:00.000000Z")) == [5, 4, 3, 2, 1]
    assert seqs(EntryFilter(start="2990-01-05T00:00:00.000000Z")) == []
    assert seqs(EntryFilter(end="2000-01-01T00:00:00.000000Z")) == []
    assert seqs(EntryFilter(kind=EntryKind.TOPUP, start=day2.start)) == []
    # Another ledger's entries never show up.
    assert store.list_entries(account, Mode.TEST, None, 5, EntryFilter()).items == []


def test_daily_totals_follow_every_entry(store: Store, database_url: str) -> None:
    account = _account(store)
    _at(database_url, "2990-03-01T23:59:59.999999Z")
    _post(store, account, EntryKind.TOPUP, 100, "a")
    charge = _post(store, account, EntryKind.CHARGE, 30, "b").entry
    _post(store, account, EntryKind.CHARGE, 20, "c")
    _at(database_url, "2990-03-03T00:00:00.000000Z")
    _post(store, account, EntryKind.REFUND, 5, "d", refund_of=charge.id)
    # A group commit goes through the same trigger.
    batch = [_entry(account, EntryKind.CHARGE, 1, key=f"g{i}") for i in range(3)]
    store.append_entries(batch)
    series = store.daily_totals(account, Mode.LIVE, "2990-03-01", "2990-03-31")
    assert series.opening_minor == 0
    assert series.days == [
        DayTotal("2990-03-01", EntryKind.TOPUP, 100, 1, 1, 100),
        DayTotal("2990-03-01", EntryKind.CHARGE, -50, 2, 3, 50),
        DayTotal("2990-03-03", EntryKind.REFUND, 5, 1, 4, 55),
        DayTotal("2990-03-03", EntryKind.CHARGE, -3, 3, 7, 52),
    ]
    later = store.daily_totals(account, Mode.LIVE, "2990-03-02", "2990-03-02")
    assert (later.opening_minor, later.days) == (50, [])
    assert store.daily_totals(account, Mode.TEST, "2990-03-01", "2990-03-31").days == []
    with pytest.raises(NotFound):
        store.daily_totals("acc_nobody", Mode.LIVE, "2990-03-01", "2990-03-31")
    assert store.verify() == []
    raw_execute(database_url, "UPDATE daily_totals SET amount_minor = 99 WHERE kind = 'topup'")
    problems = store.verify()
    assert any("daily_totals" in p for p in problems), problems


def test_key_by_digest_finds_live_keys_only(store: Store) -> None:
    account = _account(store)
    key, _ = store.create_key(
        NewKey(account, Mode.TEST, hash_key("k" * 25, TEST_SECRET), "…kkkk"), None
    )
    found = store.key_by_digest(hash_key("k" * 25, TEST_SECRET))
    assert found is not None and (found.account_id, found.mode) == (account, Mode.TEST)
    assert store.key_by_digest(hash_key("x" * 25, TEST_SECRET)) is None
    store.revoke_key(key.id)
    assert store.key_by_digest(hash_key("k" * 25, TEST_SECRET)) is None


# --------------------------------------------------------------------------- holds


def _hold(store: Store, account: str, amount: int, key: str, expires_at: str = "2999-01-01"):  # type: ignore[no-untyped-def]
    from birdbalance.records import NewHold

    new = NewHold(account, Mode.LIVE, amount, expires_at + "T00:00:00.000000Z", None, {})
    return store.create_hold(new, Idempotency(key, "fp-" + key)).hold


def test_holds_reserve_capture_and_void(store: Store) -> None:
    from birdbalance.errors import StateConflict
    from birdbalance.ledger import HoldStatus

    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "t")
    first = _hold(store, account, 60, "h1")
    got = store.get_account(account).live
    assert (got.balance_minor, got.held_minor) == (100, 60)
    with pytest.raises(NotEnoughBalance):
        _hold(store, account, 41, "h2")
    with pytest.raises(NotEnoughBalance):
        _post(store, account, EntryKind.CHARGE, 41, "c-too-much")
    second = _hold(store, account, 40, "h2")
    # Capture part of the first: the rest is released, the charge names the hold.
    captured = store.capture_hold(first.id, 25, None, {}, Idempotency("cap", "fp-cap"))
    assert captured.hold.status is HoldStatus.CAPTURED and captured.hold.captured_minor == 25
    assert captured.capture is not None and captured.capture.entry.hold_id == first.id
    assert captured.capture.entry.amount_minor == -25
    again = store.capture_hold(first.id, 25, None, {}, Idempotency("cap", "fp-cap"))
    assert again.replayed and again.capture is not None
    assert again.capture.entry == captured.capture.entry
    with pytest.raises(StateConflict):
        store.capture_hold(first.id, 1, None, {}, Idempotency("cap2", "fp-cap2"))
    voided = store.void_hold(second.id, Idempotency("void", "fp-void"))
    assert voided.hold.status is HoldStatus.VOIDED
    with pytest.raises(StateConflict):
        store.capture_hold(second.id, None, None, {}, Idempotency("cap3", "fp-cap3"))
    got = store.get_account(account).live
    assert (got.balance_minor, got.held_minor, got.entry_count) == (75, 0, 2)
    assert store.verify() == []
    assert [h.id for h in store.list_holds(account, Mode.LIVE, None, None, 10).items] == [
        second.id,
        first.id,
    ]


def test_holds_expire_and_stop_reserving(store: Store) -> None:
    from birdbalance.errors import StateConflict
    from birdbalance.ledger import HoldStatus

    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "t")
    store.create_key(NewKey(account, Mode.LIVE, hash_key("E" * 25, TEST_SECRET), "…EEEE"), None)
    past = _hold(store, account, 70, "h-past", expires_at="2000-01-01")
    view = store.lookup_balance(hash_key("E" * 25, TEST_SECRET))
    assert view is not None and view.balance_minor == 30  # /balance shows what is available
    assert store.expire_holds() == 1
    assert store.get_hold(past.id).status is HoldStatus.EXPIRED
    view = store.lookup_balance(hash_key("E" * 25, TEST_SECRET))
    assert view is not None and view.balance_minor == 100
    with pytest.raises(StateConflict):
        store.void_hold(past.id, Idempotency("v", "fp-v"))
    # A write also expires its ledger's due holds first, without waiting for a sweep.
    _hold(store, account, 90, "h-past-2", expires_at="2000-01-01")
    assert _post(store, account, EntryKind.CHARGE, 100, "all").entry.balance_after_minor == 0
    assert store.get_account(account).live.held_minor == 0
    assert store.verify() == []


def test_verify_finds_held_amounts_that_do_not_add_up(store: Store, database_url: str) -> None:
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "t")
    _hold(store, account, 10, "h")
    assert store.verify() == []
    raw_execute(database_url, "UPDATE balances SET held_minor = 0")
    assert any("pending holds sum to 10" in p for p in store.verify())


def test_a_resolved_hold_never_changes(store: Store, database_url: str) -> None:
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "t")
    hold = _hold(store, account, 10, "h")
    with pytest.raises(REFUSED):
        raw_execute(database_url, f"UPDATE holds SET amount_minor = 5 WHERE id = '{hold.id}'")
    store.void_hold(hold.id, Idempotency("v", "fp-v"))
    with pytest.raises(REFUSED):
        raw_execute(database_url, f"UPDATE holds SET status = 'pending' WHERE id = '{hold.id}'")
    with pytest.raises(REFUSED):
        raw_execute(database_url, "DELETE FROM holds")


# --------------------------------------------------------------------------- point in time


def test_balance_at_a_point_in_time(store: Store) -> None:
    account = _account(store)
    assert store.balance_at(account, Mode.LIVE, "2999-01-01T00:00:00.000000Z").balance_minor == 0
    times = []
    for i, amount in enumerate((5, 7, 11)):
        times.append(_post(store, account, EntryKind.TOPUP, amount, f"p{i}").entry.created_at)
    assert store.balance_at(account, Mode.LIVE, "2000-01-01T00:00:00.000000Z").seq == 0
    for seq, (at, expected) in enumerate(zip(times, (5, 12, 23), strict=True), start=1):
        found = store.balance_at(account, Mode.LIVE, at)
        assert (found.balance_minor, found.seq) >= (expected, seq)
    assert store.balance_at(account, Mode.LIVE, times[-1]).balance_minor == 23
    with pytest.raises(NotFound):
        store.balance_at("acc_00000000000000000000000000", Mode.LIVE, times[0])


def test_entry_times_never_go_backwards(store: Store, database_url: str) -> None:
    """A node whose clock is behind still writes entries no older than the last one."""
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 5, "a")
    future = "2999-01-01T00:00:00.000000Z"
    raw_execute(database_url, f"UPDATE balances SET last_entry_at = '{future}'")
    assert _post(store, account, EntryKind.TOPUP, 5, "b").entry.created_at == future
    assert store.verify() == []


# --------------------------------------------------------------------------- migrations


def test_migrating_from_v1_keeps_every_row(database_url: str) -> None:
    s = open_store(Settings(database_url=database_url))
    try:
        assert s.migrate(target=1) == ["0001_initial.sql"]
        acc = "acc_01JD3Z8Q6W6B7Y2M0N4R5T8V9X"
        now = "2026-01-02T03:04:05.000006Z"
        for sql in (
            f"INSERT INTO accounts VALUES ('{acc}', 'Old', 'prepaid', 'EUR', 6, NULL, '{{}}',"
            f" '{now}')",
            f"INSERT INTO balances VALUES ('{acc}', 'live', 7000000, 1)",
            f"INSERT INTO balances VALUES ('{acc}', 'test', 0, 0)",
            f"INSERT INTO entries VALUES ('ent_01JD3Z8Q6W6B7Y2M0N4R5T8V9X', '{acc}', 'live', 1,"
            f" 'topup', 7000000, 7000000, NULL, 'r', '{{}}', '{now}')",
            f"INSERT INTO idempotency_keys VALUES ('old-key', 'fp', 'entry',"
            f" 'ent_01JD3Z8Q6W6B7Y2M0N4R5T8V9X', '{now}')",
        ):
            raw_execute(database_url, sql)
        assert s.schema_version() == (1, len(MIGRATIONS))
        assert s.migrate() == MIGRATIONS[1:]
        got = s.get_account(acc)
        assert (got.name, got.live.balance_minor, got.live.entry_count) == ("Old", 7000000, 1)
        assert s.balance_at(acc, Mode.LIVE, now).balance_minor == 7000000
        # The per-day totals are filled from the entries already there.
        assert s.daily_totals(acc, Mode.LIVE, "2026-01-01", "2026-01-31").days == [
            DayTotal("2026-01-02", EntryKind.TOPUP, 7000000, 1, 1, 7000000)
        ]
        # The old idempotency key still answers for its entry.
        replay = _post(s, acc, EntryKind.TOPUP, 7000000, "old-key", fp="fp")
        assert replay.replayed and replay.entry.reference == "r"
        assert s.verify() == []
    finally:
        s.close()


def _sqlite_schema(url: str) -> dict[str, object]:
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        # The name search's FTS5 table (and its shadow tables) is SQLite's form of the
        # index PostgreSQL keeps as a GIN index of the same name.
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " AND name NOT LIKE 'account_names%'"
            )
        ]
        columns = {
            t: sorted(
                (r[1], bool(r[3]) or bool(r[5])) for r in conn.execute(f"PRAGMA table_info({t})")
            )
            for t in tables
        }
        indexes = sorted(
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE (type = 'index' AND sql IS NOT NULL)"
                " OR (type = 'table' AND name = 'account_names')"
            )
        )
    finally:
        conn.close()
    return {"columns": columns, "indexes": indexes}


def _postgres_schema(url: str) -> dict[str, object]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, is_nullable = 'NO'"
            " FROM information_schema.columns WHERE table_schema = 'public'"
        ).fetchall()
        indexes = sorted(
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
                " AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'"
            )
        )
    columns: dict[str, list[tuple[str, bool]]] = {}
    for table, column, not_null in rows:
        columns.setdefault(table, []).append((column, not_null))
    return {"columns": {t: sorted(c) for t, c in columns.items()}, "indexes": indexes}


def test_both_engines_migrate_to_the_same_schema(tmp_path, postgres) -> None:  # type: ignore[no-untyped-def]
    urls = {"sqlite": f"sqlite:///{tmp_path / 'same.db'}", "postgresql": postgres.new_database()}
    for url in urls.values():
        store = open_store(Settings(database_url=url))
        assert store.migrate() == MIGRATIONS
        store.close()
    sqlite_schema = _sqlite_schema(urls["sqlite"])
    postgres_schema = _postgres_schema(urls["postgresql"])
    assert sqlite_schema["indexes"] == postgres_schema["indexes"]
    assert sqlite_schema["columns"] == postgres_schema["columns"]


# --------------------------------------------------------------------------- alerts


def _events(store: Store, account: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    import json

    page = store.list_events(account, None, 100)
    return [(e.type, json.loads(e.payload)) for e in reversed(page.items)]


def test_alert_events_fire_once_per_crossing_in_the_write(store: Store, database_url: str) -> None:
    from birdbalance.records import NewAlertRule

    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 10_000000, "t1")
    rule = store.create_alert_rule(NewAlertRule(account, Mode.LIVE, 5_000000, 2_000000), 20)
    assert rule.low is False
    _post(store, account, EntryKind.CHARGE, 6_000000, "c1")  # 4: low
    _post(store, account, EntryKind.CHARGE, 1_000000, "c2")  # 3: still low, no event
    with pytest.raises(NotEnoughBalance):
        _post(store, account, EntryKind.CHARGE, 9_000000, "refused")
    _post(store, account, EntryKind.TOPUP, 3_000000, "t2")  # 6: within the hysteresis
    _post(store, account, EntryKind.TOPUP, 2_000000, "t3")  # 8: recovered
    held = _hold(store, account, 4_000000, "h1")  # available 4: low again, caused by a hold
    store.void_hold(held.id, Idempotency("v1", "fp-v1"))  # available 8: recovered
    _post(store, account, EntryKind.CHARGE, 8_000000, "c3")  # 0: low and depleted
    events = _events(store, account)
    assert [t for t, _ in events] == [
        "balance.low",
        "balance.recovered",
        "balance.low",
        "balance.recovered",
        "balance.low",
        "balance.depleted",
    ]
    low = events[0][1]
    assert low["type"] == "balance.low" and low["id"].startswith("evt_")
    assert low["data"]["available"] == "4" and low["data"]["threshold"] == "5"
    assert low["data"]["alert_id"] == rule.id and "entry" in low["data"]["cause"]
    assert events[2][1]["data"]["cause"] == {"hold": held.id}
    assert "alert_id" not in events[5][1]["data"]
    assert [r.low for r in store.list_alert_rules(account)] == [True]
    with pytest.raises(REFUSED, match="append-only"):
        raw_execute(database_url, "DELETE FROM events")
    assert store.verify() == []


def test_postpaid_credit_limit_and_rules_created_below(store: Store) -> None:
    from birdbalance.records import NewAlertRule

    account = store.create_account(
        NewAccount(None, Payment.POSTPAID, "EUR", 6, 10_000000, {}), None
    ).id
    _post(store, account, EntryKind.CHARGE, 4_000000, "c1")
    rule = store.create_alert_rule(NewAlertRule(account, Mode.LIVE, 0, 0), 20)
    assert rule.low is True  # already below: no low event, a recovery comes first
    _post(store, account, EntryKind.CHARGE, 6_000000, "c2")  # -10: the limit
    _post(store, account, EntryKind.TOPUP, 11_000000, "t1")  # +1: recovered
    assert [t for t, _ in _events(store, account)] == [
        "credit_limit.reached",
        "balance.recovered",
    ]
    removed = store.delete_alert_rule(rule.id)
    assert removed.id == rule.id and store.list_alert_rules(account) == []
    _post(store, account, EntryKind.CHARGE, 2_000000, "c3")
    assert len(_events(store, account)) == 2
    with pytest.raises(NotFound):
        store.delete_alert_rule(rule.id)


# ---------------------------------------------------------------- group commit


def _entry(account: str, kind: EntryKind, amount: int, **kw):  # type: ignore[no-untyped-def]
    key = kw.pop("key")
    new = NewEntry(
        account, kw.pop("mode", Mode.LIVE), kind, amount, kw.pop("refund_of", None), None, {}
    )
    return new, Idempotency(key, kw.pop("fp", "fp-" + key))


def test_a_batch_answers_each_entry_as_if_it_ran_alone(store: Store) -> None:
    account, other = _account(store), _account(store)
    earlier = _post(store, account, EntryKind.TOPUP, 100, "earlier")
    results = store.append_entries(
        [
            _entry(account, EntryKind.CHARGE, 30, key="c1"),  # 70
            _entry(account, EntryKind.CHARGE, 71, key="too-much"),  # refused: 70 left
            _entry("acc_missing", EntryKind.TOPUP, 5, key="nobody"),  # refused: no account
            _entry(account, EntryKind.TOPUP, 100, key="earlier"),  # replays an earlier batch
            _entry(account, EntryKind.CHARGE, 30, key="c1"),  # replays c1 of this batch
            _entry(account, EntryKind.CHARGE, 31, key="c1", fp="changed"),  # conflict
            _entry(other, EntryKind.TOPUP, 9, key="o1"),  # another ledger, same commit
            _entry(account, EntryKind.CHARGE, 70, key="too-much"),  # the refused key, reused
            _entry(account, EntryKind.TOPUP, 5, key="t2"),  # 5
        ]
    )
    c1 = results[0]
    assert not isinstance(c1, Exception) and c1.entry.balance_after_minor == 70
    assert isinstance(results[1], NotEnoughBalance)
    assert isinstance(results[2], NotFound)
    assert results[3] == replace(earlier, replayed=True)
    assert results[4] == replace(c1, replayed=True)
    assert isinstance(results[5], IdempotencyConflict)
    assert [
        r.entry.balance_after_minor
        for r in (results[6], results[7], results[8])
        if not isinstance(r, Exception)
    ] == [9, 0, 5]
    live = store.get_account(account).live
    assert (live.balance_minor, live.entry_count) == (5, 4)
    assert [e.seq for e in reversed(store.list_entries(account, Mode.LIVE, None, 10).items)] == [
        1,
        2,
        3,
        4,
    ]
    assert store.verify() == []


def test_a_batch_refunds_a_charge_it_made_itself(store: Store) -> None:
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "t")
    charge = _post(store, account, EntryKind.CHARGE, 40, "c").entry
    results = store.append_entries(
        [
            _entry(account, EntryKind.CHARGE, 20, key="c2"),
            _entry(account, EntryKind.REFUND, 30, key="r1", refund_of=charge.id),
            _entry(account, EntryKind.REFUND, 11, key="r2", refund_of=charge.id),  # 41 > 40
            _entry(account, EntryKind.REFUND, 10, key="r3", refund_of=charge.id),
        ]
    )
    assert isinstance(results[2], Exception)
    done = [r.entry.balance_after_minor for r in results if not isinstance(r, Exception)]
    assert done == [40, 70, 80]
    first = results[0]
    assert not isinstance(first, Exception)
    (refund,) = store.append_entries(
        [_entry(account, EntryKind.REFUND, 20, key="r4", refund_of=first.entry.id)]
    )
    assert not isinstance(refund, Exception) and refund.entry.balance_after_minor == 100
    assert store.verify() == []


def test_a_batch_spread_over_many_ledgers_moves_each_once(store: Store) -> None:
    from birdbalance.storage import MAX_WRITE_BATCH

    accounts = [_account(store) for _ in range(8)]
    batch = [
        _entry(
            accounts[n % 8], EntryKind.TOPUP, n + 1, key=f"k{n}", mode=Mode(("live", "test")[n % 2])
        )
        for n in range(MAX_WRITE_BATCH)
    ]
    assert all(not isinstance(r, Exception) for r in store.append_entries(batch))
    total = sum(
        a.live.balance_minor + a.test.balance_minor for a in map(store.get_account, accounts)
    )
    assert total == sum(range(1, MAX_WRITE_BATCH + 1))
    with pytest.raises(AssertionError):
        store.append_entries([*batch, batch[0]])  # more than a batch may hold
    assert store.verify() == []


def test_a_batch_the_database_refuses_writes_nothing_and_the_connection_recovers(
    store: Store, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement failing inside a (pipelined) batch rolls all of it back."""
    accounts = [_account(store) for _ in range(3)]
    for n, account in enumerate(accounts):
        _post(store, account, EntryKind.TOPUP, 1000, f"t{n}")
    # A rule the database enforces and birdbalance does not know: charges over 500 fail
    # on insert, after the batch's reads and locks.
    if database_url.startswith("sqlite:"):
        raw_execute(
            database_url,
            "CREATE TRIGGER refuse BEFORE INSERT ON entries WHEN NEW.amount_minor < -500"
            " BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END",
        )
    else:
        raw_execute(
            database_url,
            "ALTER TABLE entries ADD CONSTRAINT refuse CHECK (amount_minor >= -500) NOT VALID",
        )
    batch = [
        _entry(accounts[0], EntryKind.CHARGE, 10, key="fine-1"),
        _entry(accounts[1], EntryKind.CHARGE, 600, key="refused"),
        _entry(accounts[2], EntryKind.CHARGE, 10, key="fine-2"),
    ]
    with pytest.raises(Exception, match="refuse"):
        store.append_entries(batch)
    # Nothing of the batch landed: no entry, no key, no ledger moved.
    assert [store.get_account(a).live.balance_minor for a in accounts] == [1000] * 3
    assert store.verify() == []
    # The store rolled back itself: the pool found no transaction to clean up.
    assert not [r for r in caplog.records if "rolling back" in r.getMessage()]
    # The same connection(s) serve the next batch, and its keys are still free.
    results = store.append_entries([batch[0], batch[2]] * 4)
    assert [r.entry.balance_after_minor for r in results] == [990, 990] * 4  # type: ignore[union-attr]
    assert [r.replayed for r in results] == [False, False] + [True] * 6  # type: ignore[union-attr]
    assert store.verify() == []


def test_alerts_inside_one_batch_fire_per_crossing(store: Store) -> None:
    from birdbalance.records import NewAlertRule

    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 10, "t")
    store.create_alert_rule(NewAlertRule(account, Mode.LIVE, 5, 0), 20)
    store.append_entries(
        [
            _entry(account, EntryKind.CHARGE, 6, key="a"),  # 4: low
            _entry(account, EntryKind.CHARGE, 1, key="b"),  # 3: still low
            _entry(account, EntryKind.TOPUP, 7, key="c"),  # 10: recovered
            _entry(account, EntryKind.CHARGE, 10, key="d"),  # 0: low, depleted
        ]
    )
    assert [t for t, _ in _events(store, account)] == [
        "balance.low",
        "balance.recovered",
        "balance.low",
        "balance.depleted",
    ]
    assert [r.low for r in store.list_alert_rules(account)] == [True]
    assert store.verify() == []


def test_a_batch_seeks_its_ledgers_instead_of_scanning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from birdbalance.storage.sqlite import SQLiteStore

    store = open_store(Settings(database_url=f"sqlite:///{tmp_path / 'plan.db'}"))
    assert isinstance(store, SQLiteStore)
    store.migrate()
    accounts = [_account(store) for _ in range(3)]
    seen: list[str] = []
    conn = store._conn()
    conn.set_trace_callback(seen.append)
    store.append_entries([_entry(a, EntryKind.TOPUP, 1, key=a) for a in accounts])
    conn.set_trace_callback(None)
    batch_reads = [sql for sql in seen if sql.startswith("WITH w")]
    assert len(batch_reads) == 2  # the ledgers and their alert rules
    for sql in batch_reads:
        plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "SCAN b" not in plan and "SCAN r" not in plan, plan
        assert "SEARCH b USING PRIMARY KEY" in plan or "SEARCH r USING INDEX" in plan, plan
    store.close()


def _plans(database_url: str, store: Store, account: str, filters: EntryFilter) -> str:
    """The query plan of the entries page for ``filters``, as text."""
    captured: list[tuple[str, list[object]]] = []
    original = store._execute  # type: ignore[attr-defined]

    def spy(conn, sql, args=()):  # type: ignore[no-untyped-def]
        if sql.lstrip().startswith("SELECT id, account_id"):
            captured.append((sql, list(args)))
        return original(conn, sql, args)

    store._execute = spy  # type: ignore[attr-defined]
    try:
        store.list_entries(account, Mode.LIVE, None, 50, filters)
    finally:
        store._execute = original  # type: ignore[attr-defined]
    (sql, args) = captured[-1]
    if database_url.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
        conn.close()
        return " | ".join(str(r[3]) for r in rows)
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as pg:
        # Tiny tables are cheaper to scan: ask whether an index can answer at all.
        pg.execute("SET enable_seqscan = off")
        pg.execute("SET enable_bitmapscan = off")
        plan = pg.execute("EXPLAIN " + sql.replace("?", "%s"), args).fetchall()  # type: ignore[arg-type]
        return " | ".join(str(r[0]) for r in plan)


def test_every_entry_filter_is_an_index_range_in_seq_order(store: Store, database_url: str) -> None:
    account = _account(store)
    for i in range(1, 31):
        kind = EntryKind.TOPUP if i % 3 else EntryKind.CHARGE
        _post_ref(store, account, kind, 1, f"p{i}", f"r{i}")
    day = EntryFilter(start="2000-01-01T00:00:00Z", end="2999-01-01T00:00:00Z")
    # The (account_id, mode, seq) unique index, as each engine names it.
    seqs = "autoindex_entries" if database_url.startswith("sqlite:") else "mode_seq_key"
    expected = {
        "all": (EntryFilter(), seqs),
        "kind": (EntryFilter(kind=EntryKind.TOPUP), "entries_kind"),
        "charges": (EntryFilter(kind=EntryKind.CHARGE), seqs),
        "reference": (EntryFilter(reference="r4"), "entries_reference"),
        "range": (day, seqs),
        "range+kind": (EntryFilter(kind=EntryKind.REFUND, start=day.start), "entries_kind"),
    }
    for name, (filters, index) in expected.items():
        plan = _plans(database_url, store, account, filters)
        assert index in plan, (name, plan)
        for bad in ("SCAN entries", "TEMP B-TREE", "Seq Scan", "Sort"):
            assert bad not in plan, (name, plan)


def test_an_account_id_searched_for_is_one_index_seek(store: Store, database_url: str) -> None:
    """``search`` with an account id finds that account alone (not by scanning every
    name); any other text matches part of a name, whatever its case."""
    ids = [
        store.create_account(NewAccount(name, Payment.PREPAID, "EUR", 6, None, {}), None).id
        for name in ("Alpha Ltd", "beta", "Alphabet")
    ]
    assert [a.id for a in store.list_accounts(None, 50, ids[1]).items] == [ids[1]]
    assert [a.id for a in store.list_accounts(None, 50, "ALPHA").items] == [ids[0], ids[2]]
    assert store.list_accounts(None, 50, "acc_" + "0" * 26).items == []
    if database_url.startswith("sqlite:"):
        sql, args = account_page_sql(None, 50, ids[1])
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
        conn.close()
        assert "SCAN a" not in plan and "SEARCH a USING INDEX" in plan, plan


def test_a_name_search_reads_the_name_index(
    store: Store, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name search of three characters or more is answered from the engine's name
    index (FTS5 trigrams on SQLite, a pg_trgm GIN index on PostgreSQL), with the same
    matches on both: part of the name, any case (accented letters too), and %, _, \\ and
    quotes taken literally."""
    names = ["ACME GmbH", 'Quote "q" Ltd', "50% off_sale", "Ümlaut AG", None, "acme two", "x\\y"]
    for name in names:
        store.create_account(NewAccount(name, Payment.PREPAID, "EUR", 6, None, {}), None)

    def found(search: str) -> list[str | None]:
        return [a.name for a in store.list_accounts(None, 50, search).items]

    assert found("acme") == found("ACM") == found("ac") == ["ACME GmbH", "acme two"]
    assert found('"q"') == ['Quote "q" Ltd']
    assert found("50%") == found("%") == found("_") == found("off_") == ["50% off_sale"]
    assert found("ümlaut") == found("ÜMLAUT") == ["Ümlaut AG"]
    assert found("x\\y") == found("\\") == ["x\\y"]
    assert found("nobody") == []
    # Text in more names than the index is asked for is read in id order: same answer.
    monkeypatch.setattr(accounts_module, "MAX_INDEXED_MATCHES", 1)
    assert found("acme") == ["ACME GmbH", "acme two"]
    assert found("ümlaut") == ["Ümlaut AG"]
    if database_url.startswith("sqlite:"):
        sql, args = account_page_sql(None, 50, "acme", store.name_index)  # type: ignore[attr-defined]
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
        conn.close()
        assert "SCAN account_names VIRTUAL TABLE INDEX 0:M" in plan, plan
        assert "SEARCH a USING INTEGER PRIMARY KEY" in plan, plan
        return
    # Enough accounts that reading them all costs more than the index (the planner
    # rightly scans a table of 20,000).
    fill_accounts(database_url, 100_000)
    with psycopg.connect(database_url, autocommit=True) as pg:
        pg.execute("ANALYZE")
        sql, args = account_page_sql(None, 50, "acme", None)
        plan = pg.execute("EXPLAIN " + sql.replace("?", "%s"), args).fetchall()
    text = "\n".join(row[0] for row in plan)
    assert "account_names" in text and "Seq Scan on accounts" not in text, text


def test_an_account_page_deep_in_the_list_reads_one_page(store: Store, database_url: str) -> None:
    """Keyset pages cost the same at any depth: the deepest page of 20,000 accounts
    reads about one page of rows from each table (PostgreSQL used to merge-join every
    ledger before the cursor)."""
    accounts = 20_000
    if database_url.startswith("sqlite:"):
        # SQLite seeks each ledger by its key: its plan says so, whatever the data.
        sql, args = account_page_sql("acc_" + "0" * 26, 50, None)
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
        conn.close()
        assert "SCAN" not in plan, plan
        return
    fill_accounts(database_url, accounts)
    with psycopg.connect(database_url, autocommit=True) as pg:
        pg.execute("ANALYZE")
        deep = "acc_" + f"{accounts * 3 // 4:026d}"
        sql, args = account_page_sql(deep, 50, None)
        plan = pg.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql.replace("?", "%s"), args)
        nodes = [plan.fetchone()[0][0]["Plan"]]  # type: ignore[index]
        read = []
        while nodes:
            node = nodes.pop()
            read.append(node.get("Actual Rows", 0) * node.get("Actual Loops", 1))
            nodes += node.get("Plans", [])
    assert max(read) <= 200, read  # one page of 50 (and the row that says there is more)
    assert [a.id for a in store.list_accounts(deep, 2, None).items] == [
        "acc_" + f"{accounts * 3 // 4 + n:026d}" for n in (1, 2)
    ]
