"""The SQLite store on a real file: atomicity, append-only, idempotency, verify."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from birdbalance.errors import IdempotencyConflict, NotEnoughBalance, NotFound
from birdbalance.keys import hash_key
from birdbalance.ledger import EntryKind, Mode, Payment
from birdbalance.records import Idempotency, NewAccount, NewEntry, NewKey
from birdbalance.storage.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "ledger.db")
    assert s.schema_version() == (0, 1)
    assert s.migrate() == ["0001_initial.sql"]
    assert s.migrate() == []
    yield s
    s.close()


def _account(store: SQLiteStore, payment: Payment = Payment.PREPAID) -> str:
    return store.create_account(NewAccount(None, payment, "EUR", 6, None, {}), None).id


def _post(store: SQLiteStore, account: str, kind: EntryKind, amount: int, key: str, **kw):  # type: ignore[no-untyped-def]
    new = NewEntry(
        account, kw.pop("mode", Mode.LIVE), kind, amount, kw.pop("refund_of", None), None, {}
    )
    return store.post_entry(new, Idempotency(key, kw.pop("fp", "fp-" + key)))


def test_entries_cannot_be_updated_or_deleted(store: SQLiteStore) -> None:
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "a")
    raw = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("UPDATE entries SET amount_minor = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM entries")
    raw.close()


def test_a_refused_write_changes_nothing(store: SQLiteStore) -> None:
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "a")
    with pytest.raises(NotEnoughBalance):
        _post(store, account, EntryKind.CHARGE, 101, "b")
    got = store.get_account(account)
    assert got.live.balance_minor == 100 and got.live.entry_count == 1
    # The refused key was not consumed: it can carry a request that succeeds.
    assert _post(store, account, EntryKind.CHARGE, 100, "b").entry.balance_after_minor == 0


def test_idempotent_replay_and_conflict(store: SQLiteStore) -> None:
    account = _account(store)
    first = _post(store, account, EntryKind.TOPUP, 100, "same")
    again = _post(store, account, EntryKind.TOPUP, 100, "same")
    assert again.replayed and again.entry == first.entry
    with pytest.raises(IdempotencyConflict):
        _post(store, account, EntryKind.TOPUP, 100, "same", fp="another request")
    assert store.get_account(account).live.entry_count == 1


def test_live_and_test_ledgers_never_mix(store: SQLiteStore) -> None:
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "live")
    _post(store, account, EntryKind.TOPUP, 7, "test", mode=Mode.TEST)
    got = store.get_account(account)
    assert (got.live.balance_minor, got.test.balance_minor) == (100, 7)
    live_key = NewKey(account, Mode.LIVE, hash_key("L" * 25), "…LLLL")
    test_key = NewKey(account, Mode.TEST, hash_key("test_" + "T" * 25), "test_…TTTT")
    store.create_key(live_key, None)
    store.create_key(test_key, None)
    live_view = store.lookup_balance(hash_key("L" * 25))
    test_view = store.lookup_balance(hash_key("test_" + "T" * 25))
    assert live_view is not None and test_view is not None
    assert (live_view.balance_minor, test_view.balance_minor) == (100, 7)


def test_revoked_keys_find_nothing(store: SQLiteStore) -> None:
    account = _account(store)
    key, _ = store.create_key(NewKey(account, Mode.LIVE, hash_key("K" * 25), "…KKKK"), None)
    assert store.lookup_balance(hash_key("K" * 25)) is not None
    store.revoke_key(key.id)
    assert store.lookup_balance(hash_key("K" * 25)) is None
    assert store.revoke_key(key.id).revoked_at is not None


def test_refund_must_name_a_charge_of_the_same_ledger(store: SQLiteStore) -> None:
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


def test_verify_finds_a_tampered_balance(store: SQLiteStore) -> None:
    account = _account(store)
    _post(store, account, EntryKind.TOPUP, 100, "a")
    assert store.verify() == []
    raw = sqlite3.connect(store.path)
    raw.execute("UPDATE balances SET balance_minor = 101 WHERE mode = 'live'")
    raw.commit()
    raw.close()
    problems = store.verify()
    assert any("entries sum to 100" in p for p in problems), problems


def test_pages_are_bounded_and_complete(store: SQLiteStore) -> None:
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
