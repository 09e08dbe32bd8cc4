"""Arithmetic that cannot overflow: every stored sum stops at its bound, on both engines.

Hypothesis picks amounts near the largest entry and drives a real ledger of each engine
until each bound refuses a write: the balance (10**18), what pending holds reserve on a
postpaid ledger without a credit limit (10**18), and a day's turnover each way (10**18,
which bounds every per-day total). At each bound the next write gets 422 and changes
nothing; ``verify`` stays clean; a statement over the whole day adds up exactly.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from birdbalance.errors import InvalidParameter, ServiceError
from birdbalance.ids import utc_timestamp
from birdbalance.ledger import MAX_DAY_TURNOVER_MINOR, MAX_HELD_MINOR, EntryKind, Mode, Payment
from birdbalance.money import MAX_BALANCE_MINOR, MAX_ENTRY_MINOR
from birdbalance.records import Idempotency, NewAccount, NewEntry, NewHold
from birdbalance.settings import Settings
from birdbalance.storage import MAX_WRITE_BATCH, Store, open_store
from birdbalance.timestamps import timestamp_after
from tests.databases import ENGINES, sqlite_url

INT64_MAX = 2**63 - 1
NEAR_MAX = st.integers(MAX_ENTRY_MINOR - 10**9, MAX_ENTRY_MINOR)
_keys = itertools.count()


@pytest.fixture(scope="module", params=ENGINES)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """One database per engine for the module (Hypothesis runs each example in it)."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path_factory.mktemp("bounds") / "bounds.db")
    else:
        url = request.getfixturevalue("postgres").new_database()
    opened = open_store(Settings(database_url=url))
    opened.migrate()
    yield opened
    opened.close()


def _account(store: Store, payment: Payment) -> str:
    new = NewAccount(None, payment, "EUR", 6, None, {})
    return store.create_account(new, None).id


def _idem() -> Idempotency:
    n = next(_keys)
    return Idempotency(f"bounds-{utc_timestamp()}-{n}", f"fp-{n}")


def _post_until_refused(
    store: Store, account: str, kinds: Iterator[EntryKind], amounts: Iterator[int]
) -> tuple[int, ServiceError]:
    """Post entries in group commits until one is refused; how many landed, and why."""
    posted = 0
    while True:
        batch = [
            (NewEntry(account, Mode.LIVE, next(kinds), next(amounts), None, None, {}), _idem())
            for _ in range(MAX_WRITE_BATCH)
        ]
        for result in store.append_entries(batch):
            if isinstance(result, ServiceError):
                return posted, result
            posted += 1
            assert posted < 10_000, "no bound stopped the writes"


def _balance(store: Store, account: str) -> tuple[int, int]:
    ledger = store.get_account(account).live
    return ledger.balance_minor, ledger.held_minor


@given(amount=NEAR_MAX)
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_balance_and_the_day_stop_at_their_bounds(store: Store, amount: int) -> None:
    account = _account(store, Payment.PREPAID)
    # Top-ups only: the balance and the day's credits grow together to 10**18.
    landed, refused = _post_until_refused(
        store, account, itertools.repeat(EntryKind.TOPUP), itertools.repeat(amount)
    )
    assert isinstance(refused, InvalidParameter) and refused.parameter == "amount"
    assert landed == MAX_BALANCE_MINOR // amount
    balance, _ = _balance(store, account)
    assert balance == landed * amount <= MAX_BALANCE_MINOR < INT64_MAX
    # Charges and top-ups in turn: the balance stays put, the day's turnover hits its bound.
    second = _account(store, Payment.PREPAID)
    kinds = itertools.cycle([EntryKind.TOPUP, EntryKind.CHARGE])
    landed, refused = _post_until_refused(store, second, kinds, itertools.repeat(amount))
    assert isinstance(refused, InvalidParameter) and "one UTC day" in refused.description
    assert landed == 2 * (MAX_DAY_TURNOVER_MINOR // amount)
    assert _balance(store, second) == (0, 0)
    assert store.verify() == []
    statement = store.statement(
        second, Mode.LIVE, "1970-01-01T00:00:00.000000Z", timestamp_after(60), 0, 10
    )
    assert statement.totals_minor == {
        "topup": landed // 2 * amount,
        "charge": -landed // 2 * amount,
    }
    assert statement.opening_minor == 0 == statement.closing_minor


@given(amount=NEAR_MAX)
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
def test_holds_on_a_postpaid_ledger_without_a_limit_stop_at_their_bound(
    store: Store, amount: int
) -> None:
    account = _account(store, Payment.POSTPAID)
    held = 0
    expires_at = timestamp_after(3600)
    while True:
        new = NewHold(account, Mode.LIVE, amount, expires_at, None, {})
        try:
            store.create_hold(new, _idem())
        except InvalidParameter as exc:
            assert "pending holds" in exc.description
            break
        held += amount
        assert held <= MAX_HELD_MINOR
    assert held == MAX_HELD_MINOR // amount * amount
    balance, stored_held = _balance(store, account)
    assert (balance, stored_held) == (0, held)
    available = balance - stored_held
    assert -INT64_MAX <= available <= INT64_MAX
    assert store.verify() == []


def test_a_statement_past_64_bits_adds_up_exactly_on_sqlite(tmp_path: Path) -> None:
    """Each day is bounded, a run of days is not: SQLite's SUM would overflow, and the
    statement adds up in Python instead. (PostgreSQL sums a BIGINT as a NUMERIC.)"""
    url = sqlite_url(tmp_path / "long.db")
    store = open_store(Settings(database_url=url))
    store.migrate()
    account = _account(store, Payment.POSTPAID)
    store.close()
    # 12 days of 10**18 in and 10**18 out (each day at its bound): each kind's total is
    # 1.2 * 10**19, past 2**63, while the balance never leaves [0, 10**15].
    per_day, days = 1000, 12
    conn = sqlite3.connect(tmp_path / "long.db")
    rows = []
    for n in range(2 * per_day * days):
        kind, amount = ("topup", MAX_ENTRY_MINOR) if n % 2 == 0 else ("charge", -MAX_ENTRY_MINOR)
        at = f"2026-01-{1 + n // (2 * per_day):02d}T00:00:00.{n % 10**6:06d}Z"
        after = MAX_ENTRY_MINOR if n % 2 == 0 else 0
        rows.append((f"ent_{n:026d}", account, n + 1, kind, amount, after, at))
    conn.executemany(
        "INSERT INTO entries (id, account_id, mode, seq, kind, amount_minor,"
        " balance_after_minor, refund_of, reference, metadata, created_at, hold_id)"
        " VALUES (?, ?, 'live', ?, ?, ?, ?, NULL, NULL, '{}', ?, NULL)",
        rows,
    )
    conn.commit()
    conn.close()
    store = open_store(Settings(database_url=url))
    try:
        statement = store.statement(
            account, Mode.LIVE, "2026-01-01T00:00:00.000000Z", "2026-02-01T00:00:00.000000Z", 0, 1
        )
    finally:
        store.close()
    total = per_day * days * MAX_ENTRY_MINOR
    assert total > INT64_MAX
    assert statement.totals_minor == {"topup": total, "charge": -total}
    assert statement.counts == {"topup": per_day * days, "charge": per_day * days}
