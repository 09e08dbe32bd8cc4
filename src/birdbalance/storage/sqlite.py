"""The SQLite engine: stdlib ``sqlite3``, WAL, one connection per thread.

Writes run in ``BEGIN IMMEDIATE`` transactions, which take SQLite's single write lock
up front: the ledger state read at the start of a write cannot change before its commit,
across threads and processes alike. ``synchronous=FULL`` by default, so an acknowledged
write survives power loss.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Final

from birdbalance.errors import (
    IdempotencyConflict,
    InvalidParameter,
    NotFound,
    ServiceUnavailable,
)
from birdbalance.ids import new_id, utc_timestamp
from birdbalance.ledger import (
    EntryFact,
    EntryKind,
    LedgerState,
    Mode,
    Payment,
    RefundTarget,
    audit_ledger,
    next_balance,
)
from birdbalance.records import (
    Account,
    ApiKey,
    BalanceView,
    Entry,
    Idempotency,
    LedgerTotals,
    NewAccount,
    NewEntry,
    NewKey,
    Page,
    PostedEntry,
)
from birdbalance.settings import SettingsError

_LOOKUP_SQL: Final = (
    "SELECT a.payment, a.asset, a.scale, b.balance_minor FROM api_keys k"
    " JOIN balances b ON b.account_id = k.account_id AND b.mode = k.mode"
    " JOIN accounts a ON a.id = k.account_id"
    " WHERE k.key_hash = ? AND k.revoked_at IS NULL"
)
_ACCOUNT_SQL: Final = (
    "SELECT a.id, a.name, a.payment, a.asset, a.scale, a.credit_limit_minor, a.metadata,"
    " a.created_at, l.balance_minor, l.seq, t.balance_minor, t.seq FROM accounts a"
    " JOIN balances l ON l.account_id = a.id AND l.mode = 'live'"
    " JOIN balances t ON t.account_id = a.id AND t.mode = 'test'"
)
_ENTRY_SQL: Final = (
    "SELECT id, account_id, mode, seq, kind, amount_minor, balance_after_minor, refund_of,"
    " reference, metadata, created_at FROM entries"
)
_KEY_SQL: Final = "SELECT id, account_id, mode, hint, created_at, revoked_at FROM api_keys"


def path_from_url(url: str) -> Path:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise SettingsError(f"a SQLite URL looks like sqlite:///path/to/file.db, not {url!r}")
    rest = url[len(prefix) :]
    if rest == ":memory:":
        raise SettingsError("in-memory SQLite is not supported: every thread needs the same file")
    return Path(rest)


def _migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("birdbalance.storage") / "migrations" / "sqlite"
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            found.append((int(item.name.split("_", 1)[0]), item.name, item.read_text("utf-8")))
    found.sort()
    assert [v for v, _, _ in found] == list(range(1, len(found) + 1)), "migration gap"
    return found


def _statements(script: str) -> Iterator[str]:
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    assert not buffer.strip() or buffer.strip().startswith("--"), "unterminated statement"


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class SQLiteStore:
    """:class:`birdbalance.storage.Store` on a SQLite file."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", busy_timeout_ms: int = 5000):
        self.path = path
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, nothing implicit.
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout_ms / 1000,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise ServiceUnavailable(f"the database is busy, try again ({exc})") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every statement inside sees the same committed state."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # ------------------------------------------------------------------ schema

    def schema_version(self) -> tuple[int, int]:
        latest = len(_migrations())
        return self._current_version(self._conn()), latest

    @staticmethod
    def _current_version(conn: sqlite3.Connection) -> int:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if exists is None:
            return 0
        return int(
            conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
        )

    def migrate(self) -> list[str]:
        applied = []
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT"
            )
            current = self._current_version(conn)
            for version, name, script in _migrations():
                if version <= current:
                    continue
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, name, utc_timestamp()),
                )
                applied.append(name)
        return applied

    # ------------------------------------------------------------------ hot path

    def lookup_balance(self, key_hash: bytes) -> BalanceView | None:
        row = self._conn().execute(_LOOKUP_SQL, (key_hash,)).fetchone()
        if row is None:
            return None
        return BalanceView(Payment(row[0]), row[1], row[2], row[3])

    # ------------------------------------------------------------------ idempotency

    @staticmethod
    def _replayed_id(conn: sqlite3.Connection, idem: Idempotency | None, kind: str) -> str | None:
        if idem is None:
            return None
        row = conn.execute(
            "SELECT fingerprint, resource_type, resource_id FROM idempotency_keys WHERE key = ?",
            (idem.key,),
        ).fetchone()
        if row is None:
            return None
        if row[0] != idem.fingerprint or row[1] != kind:
            raise IdempotencyConflict()
        return str(row[2])

    @staticmethod
    def _remember(
        conn: sqlite3.Connection, idem: Idempotency | None, kind: str, resource_id: str
    ) -> None:
        if idem is not None:
            conn.execute(
                "INSERT INTO idempotency_keys VALUES (?, ?, ?, ?, ?)",
                (idem.key, idem.fingerprint, kind, resource_id, utc_timestamp()),
            )

    # ------------------------------------------------------------------ accounts

    def create_account(self, new: NewAccount, idem: Idempotency | None) -> Account:
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "account")
            if replayed is not None:
                return self._account(conn, replayed)
            account_id = new_id("acc")
            conn.execute(
                "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account_id,
                    new.name,
                    new.payment.value,
                    new.asset,
                    new.scale,
                    new.credit_limit_minor,
                    _dumps(new.metadata),
                    utc_timestamp(),
                ),
            )
            conn.executemany(
                "INSERT INTO balances VALUES (?, ?, 0, 0)",
                [(account_id, Mode.LIVE.value), (account_id, Mode.TEST.value)],
            )
            self._remember(conn, idem, "account", account_id)
            return self._account(conn, account_id)

    def get_account(self, account_id: str) -> Account:
        return self._account(self._conn(), account_id)

    def _account(self, conn: sqlite3.Connection, account_id: str) -> Account:
        row = conn.execute(_ACCOUNT_SQL + " WHERE a.id = ?", (account_id,)).fetchone()
        if row is None:
            raise NotFound(f"no account {account_id}", "account")
        return _account_from_row(row)

    def list_accounts(self, cursor: str | None, limit: int, search: str | None) -> Page[Account]:
        sql = _ACCOUNT_SQL + " WHERE a.id > ?"
        args: list[Any] = [cursor or ""]
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            sql += " AND (a.id = ? OR a.name LIKE ? ESCAPE '\\')"
            args += [search, f"%{escaped}%"]
        sql += " ORDER BY a.id LIMIT ?"
        rows = self._conn().execute(sql, [*args, limit + 1]).fetchall()
        items = [_account_from_row(r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    def count_accounts(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM accounts").fetchone()[0])

    # ------------------------------------------------------------------ keys

    def create_key(self, new: NewKey, idem: Idempotency | None) -> tuple[ApiKey, bool]:
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "key")
            if replayed is not None:
                return self._key(conn, replayed), True
            self._account(conn, new.account_id)
            key_id = new_id("key")
            conn.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (key_id, new.account_id, new.mode.value, new.key_hash, new.hint, utc_timestamp()),
            )
            self._remember(conn, idem, "key", key_id)
            return self._key(conn, key_id), False

    def _key(self, conn: sqlite3.Connection, key_id: str) -> ApiKey:
        row = conn.execute(_KEY_SQL + " WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFound(f"no key {key_id}", "key")
        return _key_from_row(row)

    def list_keys(self, account_id: str) -> list[ApiKey]:
        conn = self._conn()
        self._account(conn, account_id)
        rows = conn.execute(_KEY_SQL + " WHERE account_id = ? ORDER BY id", (account_id,))
        return [_key_from_row(r) for r in rows]

    def revoke_key(self, key_id: str) -> ApiKey:
        with self._write() as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                (utc_timestamp(), key_id),
            )
            return self._key(conn, key_id)

    # ------------------------------------------------------------------ entries

    def post_entry(self, new: NewEntry, idem: Idempotency) -> PostedEntry:
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "entry")
            if replayed is not None:
                entry = self._entry(conn, replayed)
                account = self._account(conn, entry.account_id)
                return PostedEntry(entry, account.payment, account.asset, account.scale, True)
            row = conn.execute(
                "SELECT a.payment, a.asset, a.scale, a.credit_limit_minor, b.balance_minor, b.seq"
                " FROM accounts a JOIN balances b ON b.account_id = a.id AND b.mode = ?"
                " WHERE a.id = ?",
                (new.mode.value, new.account_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"no account {new.account_id}", "account")
            payment, asset, scale, credit_limit, balance, seq = row
            state = LedgerState(Payment(payment), balance, credit_limit)
            target = self._refund_target(conn, new)
            after = next_balance(state, new.kind, new.amount_minor, refund_target=target)
            entry = Entry(
                id=new_id("ent"),
                account_id=new.account_id,
                mode=new.mode,
                seq=seq + 1,
                kind=new.kind,
                amount_minor=after - balance,
                balance_after_minor=after,
                refund_of=new.refund_of,
                reference=new.reference,
                metadata=new.metadata,
                created_at=utc_timestamp(),
            )
            conn.execute(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.id,
                    entry.account_id,
                    entry.mode.value,
                    entry.seq,
                    entry.kind.value,
                    entry.amount_minor,
                    entry.balance_after_minor,
                    entry.refund_of,
                    entry.reference,
                    _dumps(entry.metadata),
                    entry.created_at,
                ),
            )
            moved = conn.execute(
                "UPDATE balances SET balance_minor = ?, seq = ?"
                " WHERE account_id = ? AND mode = ? AND seq = ?",
                (after, entry.seq, new.account_id, new.mode.value, seq),
            ).rowcount
            assert moved == 1, "ledger moved under a write lock"
            self._remember(conn, idem, "entry", entry.id)
            return PostedEntry(entry, Payment(payment), asset, scale, False)

    def _refund_target(self, conn: sqlite3.Connection, new: NewEntry) -> RefundTarget | None:
        if new.kind is not EntryKind.REFUND:
            if new.refund_of is not None:
                raise InvalidParameter("only a refund names a charge", "charge")
            return None
        if new.refund_of is None:
            return None
        row = conn.execute(
            "SELECT kind, amount_minor FROM entries WHERE id = ? AND account_id = ? AND mode = ?",
            (new.refund_of, new.account_id, new.mode.value),
        ).fetchone()
        if row is None:
            raise NotFound(
                f"no entry {new.refund_of} in this account's {new.mode} ledger", "charge"
            )
        refunded = conn.execute(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM entries WHERE refund_of = ?",
            (new.refund_of,),
        ).fetchone()[0]
        return RefundTarget(EntryKind(row[0]), row[1], refunded)

    def _entry(self, conn: sqlite3.Connection, entry_id: str) -> Entry:
        row = conn.execute(_ENTRY_SQL + " WHERE id = ?", (entry_id,)).fetchone()
        assert row is not None, entry_id
        return _entry_from_row(row)

    def list_entries(
        self, account_id: str, mode: Mode, cursor: str | None, limit: int
    ) -> Page[Entry]:
        before = int(cursor) if cursor else 2**62
        rows = (
            self._conn()
            .execute(
                _ENTRY_SQL
                + " WHERE account_id = ? AND mode = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (account_id, mode.value, before, limit + 1),
            )
            .fetchall()
        )
        items = [_entry_from_row(r) for r in rows[:limit]]
        return Page(items, str(items[-1].seq) if len(rows) > limit else None)

    # ------------------------------------------------------------------ verify

    def verify(self) -> list[str]:
        problems: list[str] = []
        with self._snapshot() as conn:
            ledgers = conn.execute(
                "SELECT b.account_id, b.mode, b.balance_minor, b.seq, a.payment"
                " FROM balances b JOIN accounts a ON a.id = b.account_id"
                " ORDER BY b.account_id, b.mode"
            ).fetchall()
            for account_id, mode, balance, seq, payment in ledgers:
                facts = (
                    EntryFact(r[0], EntryKind(r[1]), r[2], r[3])
                    for r in conn.execute(
                        "SELECT seq, kind, amount_minor, balance_after_minor FROM entries"
                        " WHERE account_id = ? AND mode = ? ORDER BY seq",
                        (account_id, mode),
                    )
                )
                problems += [
                    f"{account_id} {mode}: {p}"
                    for p in audit_ledger(facts, balance, seq, Payment(payment))
                ]
            orphans = conn.execute(
                "SELECT COUNT(*) FROM entries e LEFT JOIN balances b"
                " ON b.account_id = e.account_id AND b.mode = e.mode WHERE b.account_id IS NULL"
            ).fetchone()[0]
            if orphans:
                problems.append(f"{orphans} entries belong to no ledger")
            for refund_of, kind, charged, refunded, same in conn.execute(
                "SELECT r.refund_of, c.kind, -c.amount_minor, SUM(r.amount_minor),"
                " MIN(r.account_id = c.account_id AND r.mode = c.mode)"
                " FROM entries r JOIN entries c ON c.id = r.refund_of"
                " WHERE r.refund_of IS NOT NULL GROUP BY r.refund_of"
            ):
                if kind != EntryKind.CHARGE.value or not same:
                    problems.append(
                        f"refunds of {refund_of} do not refund a charge of their ledger"
                    )
                elif refunded > charged:
                    problems.append(f"refunds of {refund_of} ({refunded}) exceed it ({charged})")
        return problems


def _account_from_row(row: Any) -> Account:
    return Account(
        id=row[0],
        name=row[1],
        payment=Payment(row[2]),
        asset=row[3],
        scale=row[4],
        credit_limit_minor=row[5],
        metadata=json.loads(row[6]),
        created_at=row[7],
        live=LedgerTotals(row[8], row[9]),
        test=LedgerTotals(row[10], row[11]),
    )


def _key_from_row(row: Any) -> ApiKey:
    return ApiKey(row[0], row[1], Mode(row[2]), row[3], row[4], row[5])


def _entry_from_row(row: Any) -> Entry:
    return Entry(
        id=row[0],
        account_id=row[1],
        mode=Mode(row[2]),
        seq=row[3],
        kind=EntryKind(row[4]),
        amount_minor=row[5],
        balance_after_minor=row[6],
        refund_of=row[7],
        reference=row[8],
        metadata=json.loads(row[9]),
        created_at=row[10],
    )
