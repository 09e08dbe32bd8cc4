"""The ledger in SQL, shared by the engines: every query and every write path.

Each engine (``sqlite.py``, ``postgres.py``) subclasses :class:`SQLStore` and supplies
only what differs between engines: how connections and transactions are made, how a
write serializes against other writes of the same ledger, and how migrations run. The
SQL here is written once, with ``?`` placeholders, in the subset both engines share.

Concurrency, engine by engine:

- SQLite: a write transaction takes the database's single write lock up front
  (``BEGIN IMMEDIATE``), so nothing else writes until it commits.
- PostgreSQL (READ COMMITTED): a write first takes a transaction-scoped advisory lock on
  its ``Idempotency-Key`` (so two requests with one key run one after the other), then
  locks its ledger's ``balances`` row ``FOR UPDATE``. Every change to a ledger, its
  entries and its holds happens under that row lock, so the state read after taking it
  cannot change before the commit. Locks are always taken in that order (key, ledger,
  nothing else), so writes cannot deadlock.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, ClassVar, Final

from birdbalance.alerts import Crossing, EventType, RuleState, crossings, is_low
from birdbalance.errors import (
    IdempotencyConflict,
    InvalidParameter,
    KeySecretMismatch,
    NotFound,
    ServiceError,
    StateConflict,
)
from birdbalance.ids import new_id, utc_timestamp
from birdbalance.keys import KeyHasher
from birdbalance.ledger import (
    DayTurnover,
    EntryFact,
    EntryKind,
    HoldStatus,
    LedgerState,
    Mode,
    Payment,
    RefundTarget,
    audit_ledger,
    capture_amount,
    next_balance,
    reserve,
    turnover_after,
)
from birdbalance.money import balance_type, format_amount
from birdbalance.records import (
    Account,
    AdminToken,
    AlertRule,
    ApiKey,
    AuditRecord,
    BalanceAt,
    BalanceView,
    DailySeries,
    DayTotal,
    Delivery,
    DueDelivery,
    Entry,
    EntryFilter,
    Event,
    Hold,
    HoldResult,
    Idempotency,
    LedgerBalance,
    LedgerTotals,
    NewAccount,
    NewAlertRule,
    NewEntry,
    NewHold,
    NewKey,
    NewToken,
    NewWebhook,
    OutboxStats,
    Page,
    PostedEntry,
    Recharge,
    Statement,
    TokenScope,
    Webhook,
)
from birdbalance.settings import MAX_LEDGER_GAUGES, SettingsError

#: Most entries one page of a statement holds.
MAX_STATEMENT_PAGE: Final = 10_000
#: How many due holds one sweep expires at most.
MAX_EXPIRE_BATCH: Final = 500
#: Most entries one group commit (:meth:`SQLStore.post_entries`) writes in a transaction.
MAX_WRITE_BATCH: Final = 64

#: What ``GET /balance`` reads for a key digest: payment, asset, scale, available.
#: Balance and held apart: their difference is taken in Python, where a damaged row cannot
#: overflow a query that other keys' lookups share.
LOOKUP_COLUMNS: Final = "a.payment, a.asset, a.scale, b.balance_minor, b.held_minor"
#: From a live key to its account and ledger; callers add the digest condition.
LOOKUP_FROM: Final = (
    " FROM api_keys k"
    " JOIN balances b ON b.account_id = k.account_id AND b.mode = k.mode"
    " JOIN accounts a ON a.id = k.account_id"
    " WHERE k.revoked_at IS NULL AND k.key_hash"
)
#: Follows the digest condition: a rotated key ends at its ``expires_at`` (parameter: now).
LOOKUP_UNEXPIRED: Final = " AND (k.expires_at IS NULL OR k.expires_at > ?)"
LOOKUP_SQL: Final = (
    "SELECT " + LOOKUP_COLUMNS + ", k.expires_at" + LOOKUP_FROM + " = ?" + LOOKUP_UNEXPIRED
)
#: Most live (unrevoked, unexpired) keys one ledger may have: rotation needs two.
MAX_LIVE_KEYS: Final = 10
#: Largest page of the audit log.
MAX_AUDIT_PAGE: Final = 500
#: Most admin tokens listed (revoked ones included).
MAX_TOKENS: Final = 1000
#: The schema version that stores keys under the key secret.
KEY_SECRET_VERSION: Final = 7
_ACCOUNT_SQL: Final = (
    "SELECT a.id, a.name, a.payment, a.asset, a.scale, a.credit_limit_minor, a.metadata,"
    " a.created_at, l.balance_minor, l.seq, l.held_minor, t.balance_minor, t.seq,"
    " t.held_minor FROM accounts a"
    " JOIN balances l ON l.account_id = a.id AND l.mode = 'live'"
    " JOIN balances t ON t.account_id = a.id AND t.mode = 'test'"
)
_ENTRY_SQL: Final = (
    "SELECT id, account_id, mode, seq, kind, amount_minor, balance_after_minor, refund_of,"
    " reference, metadata, created_at, hold_id FROM entries"
)
_KEY_SQL: Final = (
    "SELECT id, account_id, mode, hint, created_at, revoked_at, expires_at FROM api_keys"
)
_LIVE_KEY: Final = " revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"
_TOKEN_SQL: Final = "SELECT id, name, scope, hint, created_at, revoked_at FROM admin_tokens"  # noqa: S105 -- SQL
_AUDIT_SQL: Final = "SELECT seq, at, actor, action, target, address, status, detail FROM audit_log"
#: The name under which ``server_meta`` keeps the key secret's check value.
_KEY_SECRET_CHECK: Final = "key_secret_check"  # noqa: S105 -- a row name
_HOLD_SQL: Final = (
    "SELECT id, account_id, mode, amount_minor, status, captured_minor, expires_at,"
    " reference, metadata, created_at, resolved_at FROM holds"
)
_INSERT_ENTRY_SQL: Final = (
    "INSERT INTO entries (id, account_id, mode, seq, kind, amount_minor,"
    " balance_after_minor, refund_of, reference, metadata, created_at, hold_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_KEY_SQL: Final = (
    "INSERT INTO idempotency_keys (key, fingerprint, resource_type, resource_id,"
    " created_at) VALUES (?, ?, ?, ?, ?)"
)
_MOVE_LEDGER_SQL: Final = (
    "UPDATE balances SET balance_minor = ?, seq = ?, held_minor = ?, last_entry_at = ?,"
    " turnover_day = ?, turnover_in_minor = ?, turnover_out_minor = ?"
    " WHERE account_id = ? AND mode = ? AND seq = ?"
)

LedgerKey = tuple[str, Mode]
#: Names the lock that serializes the creations counted against one bound (PostgreSQL:
#: a transaction-scoped advisory lock; SQLite's write lock already serializes them).
_LIMIT_LOCK: Final = "birdbalance-limit:"


def _pairs(count: int) -> str:
    """``(?, ?), (?, ?), ...``: ``count`` rows of a ``VALUES`` list of (account, mode)."""
    assert 1 <= count <= MAX_WRITE_BATCH
    return ", ".join(["(?, ?)"] * count)


def dumps(value: dict[str, Any]) -> str:
    """Metadata as stored: compact JSON with sorted keys."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def pending_migrations(engine: str, current: int, target: int | None) -> list[tuple[int, str, str]]:
    """The migrations after version ``current``, up to ``target`` (all when None)."""
    return [m for m in migrations(engine) if m[0] > current and (target is None or m[0] <= target)]


def migrations(engine: str) -> list[tuple[int, str, str]]:
    """``(version, file name, script)`` of an engine's migrations, in order, gap-free."""
    folder = resources.files("birdbalance.storage") / "migrations" / engine
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            found.append((int(item.name.split("_", 1)[0]), item.name, item.read_text("utf-8")))
    found.sort()
    assert [v for v, _, _ in found] == list(range(1, len(found) + 1)), "migration gap"
    return found


@dataclass(frozen=True, slots=True)
class _Ledger:
    """A ledger's row, read under the write lock."""

    account_id: str
    mode: Mode
    payment: Payment
    asset: str
    scale: int
    credit_limit_minor: int | None
    balance_minor: int
    seq: int
    held_minor: int
    last_entry_at: str | None
    turnover_day: str | None
    turnover_in_minor: int
    turnover_out_minor: int

    @property
    def turnover(self) -> DayTurnover:
        return DayTurnover(self.turnover_day, self.turnover_in_minor, self.turnover_out_minor)

    @property
    def state(self) -> LedgerState:
        return LedgerState(
            self.payment, self.balance_minor, self.credit_limit_minor, self.held_minor
        )


class SQLStore:
    """:class:`birdbalance.storage.Store` in SQL; engines subclass it.

    Subclasses provide :meth:`_read`, :meth:`_snapshot`, :meth:`_write`, :meth:`_x`,
    :meth:`_lock_key`, :meth:`schema_version`, :meth:`migrate` and :meth:`close`.
    """

    #: Folder of this engine's migrations under ``storage/migrations``.
    engine: ClassVar[str]
    #: Appended to the ledger read of a write: the row lock, where the engine has one.
    for_update: ClassVar[str] = ""
    #: Appended to the claim of due deliveries, so nodes never claim the same ones.
    skip_locked: ClassVar[str] = ""
    #: How many writes may run at once in one process.
    max_concurrent_writes: int = 1
    #: Digests keys and tokens; :func:`birdbalance.storage.open_store` sets it.
    key_hasher: KeyHasher | None = None

    # ------------------------------------------------------------------ engine hooks

    def _read(self) -> AbstractContextManager[Any]:
        """A connection for one or more independent reads."""
        raise NotImplementedError

    def _snapshot(self) -> AbstractContextManager[Any]:
        """A connection in a read transaction: every statement sees the same state."""
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Any]:
        """A connection in a write transaction, committed on success."""
        raise NotImplementedError

    def _x(self, conn: Any, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        """Execute ``sql`` (with ``?`` placeholders) and return the cursor."""
        raise NotImplementedError

    def _x_many(self, conn: Any, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Execute ``sql`` once per row (batched by the driver); the rows it changed."""
        raise NotImplementedError

    def _lock_key(self, conn: Any, key: str) -> None:
        """Serialize writes that carry the same ``Idempotency-Key``, where needed."""

    def _lock_keys(self, conn: Any, keys: Sequence[str]) -> None:
        """:meth:`_lock_key` for several keys at once, always in one global order."""
        for key in sorted(set(keys)):
            self._lock_key(conn, key)

    def schema_version(self) -> tuple[int, int]:
        raise NotImplementedError

    def latest_version(self) -> int:
        return len(migrations(self.engine))

    def close(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ hot path

    def balance_lookups(self) -> Any:
        """Async ``GET /balance`` lookups where the engine is networked; None otherwise."""
        return None

    def cache_balances(self, cache_size: int) -> bool:
        """Keep up to ``cache_size`` ``GET /balance`` answers, where the engine can tell
        when they go stale; False where it cannot (then every lookup queries)."""
        return False

    def lookup_balance(self, key_hash: bytes) -> BalanceView | None:
        with self._read() as conn:
            row = self._x(conn, LOOKUP_SQL, (key_hash, utc_timestamp())).fetchone()
        return None if row is None else balance_view(row)

    # ------------------------------------------------------------------ idempotency

    def _replayed_id(self, conn: Any, idem: Idempotency | None, kind: str) -> str | None:
        if idem is None:
            return None
        self._lock_key(conn, idem.key)
        row = self._x(
            conn,
            "SELECT fingerprint, resource_type, resource_id FROM idempotency_keys WHERE key = ?",
            (idem.key,),
        ).fetchone()
        if row is None:
            return None
        if row[0] != idem.fingerprint or row[1] != kind:
            raise IdempotencyConflict()
        return str(row[2])

    def _remember(self, conn: Any, idem: Idempotency | None, kind: str, resource_id: str) -> None:
        if idem is not None:
            row = (idem.key, idem.fingerprint, kind, resource_id, utc_timestamp())
            self._x(conn, _INSERT_KEY_SQL, row)

    # ------------------------------------------------------------------ accounts

    def create_account(self, new: NewAccount, idem: Idempotency | None) -> Account:
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "account")
            if replayed is not None:
                return self._account(conn, replayed)
            account_id = new_id("acc")
            self._x(
                conn,
                "INSERT INTO accounts (id, name, payment, asset, scale, credit_limit_minor,"
                " metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account_id,
                    new.name,
                    new.payment.value,
                    new.asset,
                    new.scale,
                    new.credit_limit_minor,
                    dumps(new.metadata),
                    utc_timestamp(),
                ),
            )
            for mode in Mode:
                self._x(
                    conn,
                    "INSERT INTO balances (account_id, mode, balance_minor, seq, held_minor)"
                    " VALUES (?, ?, 0, 0, 0)",
                    (account_id, mode.value),
                )
            self._remember(conn, idem, "account", account_id)
            return self._account(conn, account_id)

    def get_account(self, account_id: str) -> Account:
        with self._read() as conn:
            return self._account(conn, account_id)

    def _account(self, conn: Any, account_id: str) -> Account:
        row = self._x(conn, _ACCOUNT_SQL + " WHERE a.id = ?", (account_id,)).fetchone()
        if row is None:
            raise NotFound(f"no account {account_id}", "account")
        return _account_from_row(row)

    def list_accounts(self, cursor: str | None, limit: int, search: str | None) -> Page[Account]:
        sql = _ACCOUNT_SQL + " WHERE a.id > ?"
        args: list[Any] = [cursor or ""]
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            # lower() on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
            sql += " AND (a.id = ? OR lower(a.name) LIKE ? ESCAPE '\\')"
            args += [search, f"%{escaped.lower()}%"]
        sql += " ORDER BY a.id LIMIT ?"
        with self._read() as conn:
            rows = self._x(conn, sql, [*args, limit + 1]).fetchall()
        items = [_account_from_row(r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    def count_accounts(self) -> int:
        with self._read() as conn:
            return int(self._x(conn, "SELECT COUNT(*) FROM accounts").fetchone()[0])

    # ------------------------------------------------------------------ keys

    def create_key(self, new: NewKey, idem: Idempotency | None) -> tuple[ApiKey, bool]:
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "key")
            if replayed is not None:
                return self._key(conn, replayed), True
            self._account(conn, new.account_id)
            key_id = self._insert_key(conn, new)
            self._remember(conn, idem, "key", key_id)
            return self._key(conn, key_id), False

    def _insert_key(self, conn: Any, new: NewKey) -> str:
        """A new live key, within the ledger's :data:`MAX_LIVE_KEYS`."""
        # The account's row lock keeps two creations from both passing the count.
        self._lock_account(conn, new.account_id)
        live = self._x(
            conn,
            "SELECT COUNT(*) FROM api_keys WHERE account_id = ? AND mode = ? AND"  # noqa: S608 -- constants only
            + _LIVE_KEY,
            (new.account_id, new.mode.value, utc_timestamp()),
        ).fetchone()[0]
        if live >= MAX_LIVE_KEYS:
            raise StateConflict(
                f"this ledger already has {MAX_LIVE_KEYS} live keys: revoke one first", "mode"
            )
        key_id = new_id("key")
        self._x(
            conn,
            "INSERT INTO api_keys (id, account_id, mode, key_hash, hint, created_at,"
            " revoked_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
            (key_id, new.account_id, new.mode.value, new.key_hash, new.hint, utc_timestamp()),
        )
        return key_id

    def _lock_account(self, conn: Any, account_id: str) -> None:
        """Serialize key changes of one account, where the engine has row locks."""

    def rotate_key(
        self, key_id: str, new_hash: bytes, new_hint: str, expires_at: str, idem: Idempotency | None
    ) -> tuple[ApiKey, ApiKey, bool]:
        """A new key for the same ledger; the old one stays live until ``expires_at``.

        Returns ``(new, old, replayed)``. A key already ending sooner keeps its end.
        """
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "key")
            if replayed is not None:
                return self._key(conn, replayed), self._key(conn, key_id), True
            old = self._key(conn, key_id)
            now = utc_timestamp()
            if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
                raise StateConflict(f"key {key_id} is no longer live", "key")
            new_key_id = self._insert_key(
                conn, NewKey(old.account_id, old.mode, new_hash, new_hint)
            )
            self._x(
                conn,
                "UPDATE api_keys SET expires_at = ? WHERE id = ?"
                " AND (expires_at IS NULL OR expires_at > ?)",
                (expires_at, key_id, expires_at),
            )
            self._remember(conn, idem, "key", new_key_id)
            return self._key(conn, new_key_id), self._key(conn, key_id), False

    def get_key(self, key_id: str) -> ApiKey:
        with self._read() as conn:
            return self._key(conn, key_id)

    def _key(self, conn: Any, key_id: str) -> ApiKey:
        row = self._x(conn, _KEY_SQL + " WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFound(f"no key {key_id}", "key")
        return _key_from_row(row)

    def list_keys(self, account_id: str) -> list[ApiKey]:
        with self._read() as conn:
            self._account(conn, account_id)
            rows = self._x(conn, _KEY_SQL + " WHERE account_id = ? ORDER BY id", (account_id,))
            return [_key_from_row(r) for r in rows.fetchall()]

    def revoke_key(self, key_id: str) -> ApiKey:
        with self._write() as conn:
            self._x(
                conn,
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (utc_timestamp(), key_id),
            )
            return self._key(conn, key_id)

    # ------------------------------------------------------------------ the key secret

    def _adopt_key_secret(self, conn: Any) -> None:
        """Schema v7: move the keys' plain SHA-256 digests under the secret, and record it."""
        hasher = self.hasher
        rows = self._x(conn, "SELECT id, key_hash FROM api_keys").fetchall()
        self._x_many(
            conn,
            "UPDATE api_keys SET key_hash = ? WHERE id = ?",
            [(hasher.adopt(bytes(r[1])), r[0]) for r in rows],
        )
        self._x(
            conn,
            "INSERT INTO server_meta (name, value) VALUES (?, ?)",
            (_KEY_SECRET_CHECK, hasher.check_value()),
        )

    def _after_migration(self, conn: Any, version: int) -> None:
        """The steps of a migration that need more than SQL, in its transaction."""
        if version == KEY_SECRET_VERSION:
            self._adopt_key_secret(conn)

    def check_key_secret(self) -> None:
        """Raise ``KeySecretMismatch`` if the keys are stored under another secret."""
        with self._read() as conn:
            row = self._x(
                conn, "SELECT value FROM server_meta WHERE name = ?", (_KEY_SECRET_CHECK,)
            ).fetchone()
        if row is None or not hmac.compare_digest(str(row[0]), self.hasher.check_value()):
            raise KeySecretMismatch()

    @property
    def hasher(self) -> KeyHasher:
        """How keys and tokens are digested; set by :func:`birdbalance.storage.open_store`."""
        if self.key_hasher is None:
            raise SettingsError("this store was opened without a key secret")
        return self.key_hasher

    # ------------------------------------------------------------------ admin tokens

    def create_token(self, new: NewToken) -> AdminToken:
        with self._write() as conn:
            token_id = new_id("tok")
            self._x(
                conn,
                "INSERT INTO admin_tokens (id, name, scope, token_hash, hint, created_at,"
                " revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (token_id, new.name, new.scope.value, new.token_hash, new.hint, utc_timestamp()),
            )
            return self._token(conn, token_id)

    def get_token(self, token_id: str) -> AdminToken:
        with self._read() as conn:
            return self._token(conn, token_id)

    def _token(self, conn: Any, token_id: str) -> AdminToken:
        row = self._x(conn, _TOKEN_SQL + " WHERE id = ?", (token_id,)).fetchone()
        if row is None:
            raise NotFound(f"no admin token {token_id}", "token")
        return _token_from_row(row)

    def list_tokens(self) -> list[AdminToken]:
        with self._read() as conn:
            rows = self._x(conn, _TOKEN_SQL + " ORDER BY id LIMIT ?", (MAX_TOKENS,)).fetchall()
        return [_token_from_row(r) for r in rows]

    def revoke_token(self, token_id: str) -> AdminToken:
        with self._write() as conn:
            self._x(
                conn,
                "UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (utc_timestamp(), token_id),
            )
            return self._token(conn, token_id)

    def token_by_digest(self, token_hash: bytes) -> AdminToken | None:
        with self._read() as conn:
            row = self._x(
                conn,
                _TOKEN_SQL + " WHERE token_hash = ? AND revoked_at IS NULL",
                (token_hash,),
            ).fetchone()
        return None if row is None else _token_from_row(row)

    # ------------------------------------------------------------------ audit log

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Append ``records``; each keeps its ``at`` (when it happened) when it has one."""
        now = utc_timestamp()
        with self._write() as conn:
            self._x_many(
                conn,
                "INSERT INTO audit_log (at, actor, action, target, address, status, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.at or now,
                        r.actor,
                        r.action,
                        r.target,
                        r.address,
                        r.status,
                        json.dumps(r.detail, separators=(",", ":"), sort_keys=True),
                    )
                    for r in records
                ],
            )

    def list_audit(
        self, cursor: int | None, limit: int, actor: str | None, action: str | None
    ) -> Page[AuditRecord]:
        assert 1 <= limit <= MAX_AUDIT_PAGE
        where: list[str] = ["seq < ?"]
        args: list[object] = [cursor if cursor is not None else 2**62]
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        if action is not None:
            where.append("action = ?")
            args.append(action)
        with self._read() as conn:
            rows = self._x(
                conn,
                _AUDIT_SQL + " WHERE " + " AND ".join(where) + " ORDER BY seq DESC LIMIT ?",
                (*args, limit + 1),
            ).fetchall()
        records = [_audit_from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        return Page(records, str(records[-1].seq) if more else None)

    # ------------------------------------------------------------------ ledger writes

    def _read_ledger(self, conn: Any, account_id: str, mode: Mode) -> _Ledger:
        """Read (and, on engines with row locks, lock) a ledger's row."""
        ledger = self._read_ledgers(conn, [(account_id, mode)]).get((account_id, mode))
        if ledger is None:
            raise NotFound(f"no account {account_id}", "account")
        return ledger

    def _read_ledgers(self, conn: Any, wanted: Iterable[LedgerKey]) -> dict[LedgerKey, _Ledger]:
        """Read (and lock, in one global order) the wanted ledgers that exist."""
        return _ledgers_from(self._send_ledgers_read(conn, wanted).fetchall())

    def _send_ledgers_read(self, conn: Any, wanted: Iterable[LedgerKey]) -> Any:
        """The cursor of :meth:`_read_ledgers`' query (still unread where pipelined)."""
        ordered = sorted(set(wanted))
        return self._x(
            conn,
            # A join on a VALUES list, not a row-value IN: SQLite seeks each ledger by its
            # key instead of scanning every ledger.
            f"WITH w(account_id, mode) AS (VALUES {_pairs(len(ordered))})"  # noqa: S608 -- placeholders only
            " SELECT a.id, b.mode, a.payment, a.asset, a.scale, a.credit_limit_minor,"
            " b.balance_minor, b.seq, b.held_minor, b.last_entry_at, b.turnover_day,"
            " b.turnover_in_minor, b.turnover_out_minor"
            " FROM w JOIN balances b ON b.account_id = w.account_id AND b.mode = w.mode"
            " JOIN accounts a ON a.id = b.account_id"
            " ORDER BY b.account_id, b.mode" + self.for_update,
            [v for account_id, mode in ordered for v in (account_id, mode.value)],
        )

    def _lock_ledger(self, conn: Any, account_id: str, mode: Mode, now: str) -> _Ledger:
        """Read and lock a ledger, then expire its due holds: the state a write starts from."""
        ledger = self._read_ledger(conn, account_id, mode)
        if ledger.held_minor:
            ledger, _ = self._expire_due(conn, ledger, now)
        return ledger

    def _expire_due(self, conn: Any, ledger: _Ledger, now: str) -> tuple[_Ledger, int]:
        """Expire the ledger's holds that are due at ``now``; the ledger after, and how many."""
        amounts = [
            r[0]
            for r in self._x(
                conn,
                "UPDATE holds SET status = 'expired', resolved_at = ? WHERE account_id = ?"
                " AND mode = ? AND status = 'pending' AND expires_at <= ? RETURNING amount_minor",
                (now, ledger.account_id, ledger.mode.value, now),
            ).fetchall()
        ]
        if not amounts:
            return ledger, 0
        held = ledger.held_minor - sum(amounts)
        assert held >= 0, "holds released more than the ledger held"
        self._set_held(conn, ledger, held, now, {"expired_holds": len(amounts)})
        return replace(ledger, held_minor=held), len(amounts)

    def _set_held(
        self, conn: Any, ledger: _Ledger, held_minor: int, now: str, cause: dict[str, Any]
    ) -> None:
        moved = self._rowcount(
            conn,
            self._x(
                conn,
                "UPDATE balances SET held_minor = ? WHERE account_id = ? AND mode = ? AND seq = ?",
                (held_minor, ledger.account_id, ledger.mode.value, ledger.seq),
            ),
        )
        assert moved == 1, "ledger moved under its write lock"
        self._raise_alerts(conn, ledger, ledger.balance_minor, held_minor, now, cause)

    def _raise_alerts(
        self,
        conn: Any,
        ledger: _Ledger,
        balance_after_minor: int,
        held_after_minor: int,
        now: str,
        cause: dict[str, Any],
    ) -> None:
        """Write the events this move of the available amount causes, in its transaction."""
        if ledger.balance_minor - ledger.held_minor == balance_after_minor - held_after_minor:
            return
        rules = self._alert_rules(conn, [(ledger.account_id, ledger.mode)])
        self._write_crossings(
            conn,
            ledger,
            rules.get((ledger.account_id, ledger.mode), []),
            balance_after_minor,
            held_after_minor,
            now,
            cause,
        )

    def _alert_rules(
        self, conn: Any, ledgers: Sequence[LedgerKey]
    ) -> dict[LedgerKey, list[RuleState]]:
        """The live alert rules of ``ledgers`` (one query), in rule order."""
        return _rules_from(self._send_alert_rules_read(conn, ledgers).fetchall())

    def _send_alert_rules_read(self, conn: Any, ledgers: Sequence[LedgerKey]) -> Any:
        """The cursor of :meth:`_alert_rules`' query (still unread where pipelined)."""
        return self._x(
            conn,
            f"WITH w(account_id, mode) AS (VALUES {_pairs(len(ledgers))})"  # noqa: S608 -- placeholders only
            " SELECT r.account_id, r.mode, r.id, r.below_minor, r.hysteresis_minor, r.low"
            " FROM w JOIN alert_rules r ON r.account_id = w.account_id AND r.mode = w.mode"
            " WHERE r.deleted_at IS NULL"
            " ORDER BY r.id",
            [v for account_id, mode in ledgers for v in (account_id, mode.value)],
        )

    def _write_crossings(
        self,
        conn: Any,
        ledger: _Ledger,
        rules: list[RuleState],
        balance_after_minor: int,
        held_after_minor: int,
        now: str,
        cause: dict[str, Any],
    ) -> list[RuleState]:
        """Write the events of one move of ``ledger``; the rules' states after it."""
        before = ledger.balance_minor - ledger.held_minor
        after = balance_after_minor - held_after_minor
        raised = crossings(ledger.payment, ledger.credit_limit_minor, before, after, rules)
        if not raised:
            return rules
        moved = self._moved(conn, ledger, balance_after_minor, held_after_minor, now, cause)
        lows: dict[str, bool] = {}
        for crossing in raised:
            if crossing.rule_id is not None:
                lows[crossing.rule_id] = crossing.type is EventType.LOW
                self._x(
                    conn,
                    "UPDATE alert_rules SET low = ? WHERE id = ?",
                    (int(lows[crossing.rule_id]), crossing.rule_id),
                )
            self._emit(conn, crossing, moved)
            if crossing.rule_id is not None:
                self._recharge_on(conn, crossing, moved)
        return [replace(r, low=lows.get(r.id, r.low)) for r in rules]

    def _moved(
        self,
        conn: Any,
        ledger: _Ledger,
        balance_minor: int,
        held_minor: int,
        now: str,
        cause: dict[str, Any],
    ) -> _Moved:
        """A move about to raise events, with the subscriptions they may go to (read once)."""
        subscribers = self._x(
            conn,
            "SELECT id, events FROM webhooks WHERE deleted_at IS NULL"
            " AND (account_id = ? OR account_id IS NULL) ORDER BY id",
            (ledger.account_id,),
        ).fetchall()
        return _Moved(ledger, balance_minor, held_minor, now, cause, subscribers)

    def _emit(
        self, conn: Any, crossing: Crossing, moved: _Moved, extra: dict[str, Any] | None = None
    ) -> str:
        """Write one event and a delivery per matching subscription; the event's id."""
        ledger = moved.ledger
        event_id = new_id("evt")
        payload = _event_payload(
            event_id,
            crossing,
            ledger,
            moved.balance_minor,
            moved.held_minor,
            moved.now,
            moved.cause,
            extra,
        )
        self._x(
            conn,
            "INSERT INTO events (id, type, account_id, mode, rule_id, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event_id,
                crossing.type.value,
                ledger.account_id,
                ledger.mode.value,
                crossing.rule_id,
                payload,
                moved.now,
            ),
        )
        for webhook_id, wanted in moved.subscribers:
            if not wanted or crossing.type.value in wanted.split(","):
                self._x(
                    conn,
                    "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts,"
                    " next_attempt_at, created_at) VALUES (?, ?, ?, 'pending', 0, ?, ?)",
                    (new_id("dlv"), event_id, webhook_id, moved.now, moved.now),
                )
        return event_id

    # ------------------------------------------------------------------ auto-recharge

    def _recharge_on(self, conn: Any, crossing: Crossing, moved: _Moved) -> None:
        """A rule's crossing and its recharge: going low asks for a top-up; recovering
        (the top-up arrived, or any other credit) clears the failure count."""
        assert crossing.rule_id is not None
        if crossing.type is EventType.RECOVERED:
            self._x(
                conn,
                "UPDATE alert_rules SET recharge_failures = 0"
                " WHERE id = ? AND recharge_failures > 0",
                (crossing.rule_id,),
            )
        elif crossing.type is EventType.LOW:
            rule = self._alert_rule(conn, crossing.rule_id)
            if rule.recharge is not None and rule.recharge.disabled_at is None:
                self._request_topup(conn, rule, rule.recharge, moved)

    def _request_topup(self, conn: Any, rule: AlertRule, recharge: Recharge, moved: _Moved) -> None:
        available = moved.balance_minor - moved.held_minor
        if recharge.amount_minor is not None:
            amount = recharge.amount_minor
        else:
            assert recharge.up_to_minor is not None
            amount = recharge.up_to_minor - available
            if amount <= 0:  # already there (a credit since): nothing to ask for
                return
        scale = moved.ledger.scale
        extra = {
            "recharge": {
                "amount": format_amount(amount, scale),
                "attempt": recharge.failures + 1,
                "max_failures": recharge.max_failures,
            }
        }
        crossing = Crossing(EventType.TOPUP_REQUESTED, rule.id, rule.below_minor)
        self._emit(conn, crossing, moved, extra)

    def record_recharge_failure(self, rule_id: str, reason: str | None) -> AlertRule:
        """The operator's payment system could not top up: ask again while the rule is
        low, or stop asking (``recharge.disabled``) at the rule's ``max_failures``."""
        now = utc_timestamp()
        with self._write() as conn:
            found = self._alert_rule(conn, rule_id)
            ledger = self._lock_ledger(conn, found.account_id, found.mode, now)
            rule = self._alert_rule(conn, rule_id)  # under the ledger's lock now
            recharge = rule.recharge
            if recharge is None:
                raise StateConflict(f"alert rule {rule_id} has no recharge")
            if recharge.disabled_at is not None:
                raise StateConflict(f"the recharge of {rule_id} is disabled")
            failures = recharge.failures + 1
            disabled = now if failures >= recharge.max_failures else None
            self._x(
                conn,
                "UPDATE alert_rules SET recharge_failures = ?, recharge_disabled_at = ?"
                " WHERE id = ?",
                (failures, disabled, rule_id),
            )
            cause: dict[str, Any] = {"recharge_failed": reason or ""}
            moved = self._moved(conn, ledger, ledger.balance_minor, ledger.held_minor, now, cause)
            after = replace(recharge, failures=failures, disabled_at=disabled)
            if disabled is not None:
                crossing = Crossing(EventType.RECHARGE_DISABLED, rule.id, rule.below_minor)
                extra = {"recharge": {"failures": failures, "max_failures": after.max_failures}}
                self._emit(conn, crossing, moved, extra)
            elif rule.low:
                self._request_topup(conn, rule, after, moved)
            return self._alert_rule(conn, rule_id)

    @staticmethod
    def _next_entry(
        ledger: _Ledger, new: NewEntry, after_minor: int, now: str, hold_id: str | None
    ) -> Entry:
        # Entry times never go backwards within a ledger, whatever the clocks of the
        # nodes that wrote them, so "the balance at T" is one index seek.
        return Entry(
            id=new_id("ent"),
            account_id=ledger.account_id,
            mode=ledger.mode,
            seq=ledger.seq + 1,
            kind=new.kind,
            amount_minor=after_minor - ledger.balance_minor,
            balance_after_minor=after_minor,
            refund_of=new.refund_of,
            reference=new.reference,
            metadata=new.metadata,
            created_at=max(now, ledger.last_entry_at or now),
            hold_id=hold_id,
        )

    def _move_ledger(self, conn: Any, start: _Ledger, end: _Ledger) -> None:
        """Move a ledger's row from the state it was locked in to ``end``."""
        moved = self._rowcount(conn, self._x(conn, _MOVE_LEDGER_SQL, _move_row(start, end)))
        assert moved == 1, "ledger moved under its write lock"

    def _append(
        self,
        conn: Any,
        ledger: _Ledger,
        new: NewEntry,
        after_minor: int,
        now: str,
        *,
        held_after_minor: int,
        hold_id: str | None = None,
    ) -> Entry:
        """Append one entry and move the ledger's row to it (balance, seq, holds, time)."""
        entry = self._next_entry(ledger, new, after_minor, now, hold_id)
        end = _after(ledger, entry, held_after_minor)  # may refuse: before any write
        self._x(conn, _INSERT_ENTRY_SQL, _entry_row(entry))
        self._move_ledger(conn, ledger, end)
        self._raise_alerts(conn, ledger, after_minor, held_after_minor, now, {"entry": entry.id})
        return entry

    def post_entry(self, new: NewEntry, idem: Idempotency) -> PostedEntry:
        """Post one entry: :meth:`post_entries` with a batch of one."""
        (result,) = self.post_entries([(new, idem)])
        if isinstance(result, ServiceError):
            raise result
        return result

    def post_entries(
        self, batch: Sequence[tuple[NewEntry, Idempotency]]
    ) -> list[PostedEntry | ServiceError]:
        """Post several entries in one transaction (group commit): one answer per entry.

        Each entry is judged as if it ran alone, in batch order: its own idempotency check
        (a key used earlier in the batch replays that entry) and its own limit check against
        its ledger as the entries before it left it. A refused entry gets its error in its
        place and writes nothing; the others go on. Any other failure (the database) raises
        and writes nothing at all. One commit, so one fsync, for the whole batch.
        """
        assert 1 <= len(batch) <= MAX_WRITE_BATCH
        now = utc_timestamp()
        with self._batch_write() as conn:
            return _EntryBatch(self, conn, now).post(batch)

    @contextmanager
    def _batch_write(self) -> Iterator[Any]:
        """A write transaction for a group commit.

        Engines that can pipeline (PostgreSQL) queue its statements until a result or a
        row count is read, so a batch costs three round trips instead of one per
        statement; elsewhere statements run as they are made.
        """
        with self._write() as conn:
            yield conn

    def _rowcount(self, conn: Any, cursor: Any) -> int:
        """The rows ``cursor``'s statement changed (engines that pipeline settle first)."""
        return int(cursor.rowcount)

    def _posted(self, conn: Any, entry: Entry, *, replayed: bool) -> PostedEntry:
        account = self._account(conn, entry.account_id)
        return PostedEntry(entry, account.payment, account.asset, account.scale, replayed)

    def _refund_target(self, conn: Any, new: NewEntry) -> RefundTarget | None:
        if new.kind is not EntryKind.REFUND:
            if new.refund_of is not None:
                raise InvalidParameter("only a refund names a charge", "charge")
            return None
        if new.refund_of is None:
            return None
        row = self._x(
            conn,
            "SELECT kind, amount_minor FROM entries WHERE id = ? AND account_id = ? AND mode = ?",
            (new.refund_of, new.account_id, new.mode.value),
        ).fetchone()
        if row is None:
            raise NotFound(
                f"no entry {new.refund_of} in this account's {new.mode} ledger", "charge"
            )
        refunded = self._x(
            conn,
            "SELECT COALESCE(SUM(amount_minor), 0) FROM entries WHERE refund_of = ?",
            (new.refund_of,),
        ).fetchone()[0]
        return RefundTarget(EntryKind(row[0]), row[1], int(refunded))

    def _entry(self, conn: Any, entry_id: str) -> Entry:
        row = self._x(conn, _ENTRY_SQL + " WHERE id = ?", (entry_id,)).fetchone()
        assert row is not None, entry_id
        return _entry_from_row(row)

    def list_entries(
        self,
        account_id: str,
        mode: Mode,
        cursor: str | None,
        limit: int,
        filters: EntryFilter | None = None,
    ) -> Page[Entry]:
        """Newest first. Every filter is an index range in seq order: a reference, or a
        kind other than charge, has its own index; charges (most entries) are read from
        the seq index; a date range becomes a seq range by two seeks on entries_at (entry
        times never go backwards in a ledger). So a page costs the same on a ledger of a
        million entries as on one of ten."""
        assert 1 <= limit <= MAX_STATEMENT_PAGE
        wanted = filters or EntryFilter()
        before = int(cursor) if cursor else 2**62
        low = 1
        with self._read() as conn:
            if wanted.start is not None or wanted.end is not None:
                low, high = self._seq_range(conn, account_id, mode, wanted.start, wanted.end)
                if low > high:
                    return Page([], None)
                # One upper bound only: given two, SQLite may seek by the looser one and
                # filter by the other row by row (70 ms at the middle of 1M entries).
                before = min(before, high + 1)
            sql = _ENTRY_SQL + " WHERE account_id = ? AND mode = ? AND seq < ? AND seq >= ?"
            args: list[Any] = [account_id, mode.value, before, low]
            if wanted.kind is not None:
                sql += " AND kind = ?"
                args.append(wanted.kind.value)
                if wanted.kind is not EntryKind.CHARGE:
                    # Spelled as entries_kind's WHERE, so SQLite sees the index applies.
                    sql += " AND kind <> 'charge'"
            if wanted.reference is not None:
                sql += " AND reference = ?"
                args.append(wanted.reference)
            rows = self._x(conn, sql + " ORDER BY seq DESC LIMIT ?", [*args, limit + 1])
            rows = rows.fetchall()
        items = [_entry_from_row(r) for r in rows[:limit]]
        return Page(items, str(items[-1].seq) if len(rows) > limit else None)

    def _seq_range(
        self, conn: Any, account_id: str, mode: Mode, start: str | None, end: str | None
    ) -> tuple[int, int]:
        """The seqs of the ledger's entries in ``[start, end)``: (first, last), first > last
        when there are none."""
        ledger = (account_id, mode.value)
        low, high = 1, 2**62
        if start is not None:
            row = self._x(conn, _FIRST_SEQ_FROM_SQL, (*ledger, start)).fetchone()
            if row is None:
                return 1, 0
            low = int(row[0])
        if end is not None:
            row = self._x(conn, _LAST_BEFORE_SQL, (*ledger, end)).fetchone()
            if row is None:
                return 1, 0
            high = int(row[1])
        return low, high

    def daily_totals(
        self, account_id: str, mode: Mode, first_day: str, last_day: str
    ) -> DailySeries:
        """The ledger's days ``[first_day, last_day]`` (UTC ``YYYY-MM-DD``) from the per-day
        totals, and the balance before them: at most four rows a day, and one seek."""
        assert first_day <= last_day
        ledger = (account_id, mode.value)
        with self._snapshot() as conn:
            account = self._account(conn, account_id)
            before = self._x(conn, _LAST_BEFORE_SQL, (*ledger, first_day)).fetchone()
            rows = self._x(
                conn,
                "SELECT day, kind, amount_minor, entries, last_seq, balance_after_minor"
                " FROM daily_totals WHERE account_id = ? AND mode = ? AND day >= ?"
                " AND day <= ? ORDER BY day, last_seq",
                (*ledger, first_day, last_day),
            ).fetchall()
        days = [DayTotal(str(r[0]), EntryKind(r[1]), *map(int, r[2:])) for r in rows]
        return DailySeries(account, 0 if before is None else int(before[0]), days)

    def key_by_digest(self, key_hash: bytes) -> ApiKey | None:
        """The live (not revoked) key with this digest, or None."""
        with self._read() as conn:
            row = self._x(
                conn, _KEY_SQL + " WHERE key_hash = ? AND" + _LIVE_KEY, (key_hash, utc_timestamp())
            ).fetchone()
        return None if row is None else _key_from_row(row)

    def balance_at(self, account_id: str, mode: Mode, at: str) -> BalanceAt:
        """The balance after the ledger's last entry at or before ``at`` (one index seek)."""
        with self._read() as conn:
            account = self._account(conn, account_id)
            row = self._x(conn, BALANCE_AT_SQL, (account_id, mode.value, at)).fetchone()
        if row is None:
            return BalanceAt(0, 0, None, account)
        return BalanceAt(row[0], row[1], row[2], account)

    def statement(
        self,
        account_id: str,
        mode: Mode,
        start: str,
        end: str,
        after_seq: int,
        limit: int,
        *,
        summary: bool = True,
    ) -> Statement:
        """The ledger over ``[start, end)``, read in one snapshot (so it always adds up).

        Without ``summary`` only the page of entries is read (opening, closing and totals
        are 0 and empty): the later pages of an export need nothing else.
        """
        assert start <= end and after_seq >= 0 and 1 <= limit <= MAX_STATEMENT_PAGE
        ledger = (account_id, mode.value)
        in_range = " WHERE account_id = ? AND mode = ? AND created_at >= ? AND created_at < ?"

        def page(conn: Any) -> tuple[list[Entry], int | None]:
            # The range as seqs (two seeks on entries_at), so the page is one range read on
            # the seq index: filtering by time instead scanned every entry before the range.
            low, high = self._seq_range(conn, account_id, mode, start, end)
            if low > high:
                return [], None
            rows = self._x(
                conn,
                _ENTRY_SQL + " WHERE account_id = ? AND mode = ? AND seq > ? AND seq <= ?"
                " ORDER BY seq LIMIT ?",
                (*ledger, max(after_seq, low - 1), high, limit + 1),
            ).fetchall()
            entries = [_entry_from_row(r) for r in rows[:limit]]
            return entries, entries[-1].seq if len(rows) > limit else None

        if not summary:
            with self._read() as conn:
                account = self._account(conn, account_id)
                entries, more = page(conn)
            return Statement(account, 0, 0, {}, {}, entries, more)
        with self._snapshot() as conn:
            account = self._account(conn, account_id)
            # Entry times never go backwards in a ledger: the balance before a moment is
            # the last entry's before it (one seek on entries_at), and the range is a run
            # of consecutive seqs.
            opening = self._x(conn, _LAST_BEFORE_SQL, (*ledger, start)).fetchone()
            closing = self._x(conn, _LAST_BEFORE_SQL, (*ledger, end)).fetchone()
            totals = self._kind_totals(conn, in_range, (*ledger, start, end))
            entries, more = page(conn)
        opening_minor = 0 if opening is None else int(opening[0])
        closing_minor = 0 if closing is None else int(closing[0])
        sums = {str(r[0]): int(r[1]) for r in totals}
        assert opening_minor + sum(sums.values()) == closing_minor, "a statement must add up"
        counts = {str(r[0]): int(r[2]) for r in totals}
        return Statement(account, opening_minor, closing_minor, sums, counts, entries, more)

    def _kind_totals(
        self, conn: Any, where: str, args: tuple[Any, ...]
    ) -> list[tuple[str, int, int]]:
        """``(kind, sum, count)`` of the entries ``where`` selects. Exact however large:
        PostgreSQL's SUM of a BIGINT is a NUMERIC (engines without one override this)."""
        rows = self._x(
            conn,
            "SELECT kind, SUM(amount_minor), COUNT(*) FROM entries"  # noqa: S608 -- constants only
            + where
            + " GROUP BY kind",
            args,
        ).fetchall()
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    # ------------------------------------------------------------------ holds

    def create_hold(self, new: NewHold, idem: Idempotency) -> HoldResult:
        now = utc_timestamp()
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "hold")
            if replayed is not None:
                return self._hold_result(conn, replayed, None, replayed=True)
            ledger = self._lock_ledger(conn, new.account_id, new.mode, now)
            held = reserve(ledger.state, new.amount_minor)
            hold_id = new_id("hld")
            self._x(
                conn,
                "INSERT INTO holds (id, account_id, mode, amount_minor, status, captured_minor,"
                " expires_at, reference, metadata, created_at, resolved_at)"
                " VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, NULL)",
                (
                    hold_id,
                    new.account_id,
                    new.mode.value,
                    new.amount_minor,
                    new.expires_at,
                    new.reference,
                    dumps(new.metadata),
                    now,
                ),
            )
            self._set_held(conn, ledger, held, now, {"hold": hold_id})
            self._remember(conn, idem, "hold", hold_id)
            return self._hold_result(conn, hold_id, None, replayed=False, scale=ledger.scale)

    def _hold_result(
        self,
        conn: Any,
        hold_id: str,
        capture: PostedEntry | None,
        *,
        replayed: bool,
        scale: int | None = None,
    ) -> HoldResult:
        """A hold as it is now, with the scale its answer renders in."""
        hold = self._hold(conn, hold_id)
        if scale is None:
            scale = (
                capture.scale if capture is not None else self._account(conn, hold.account_id).scale
            )
        return HoldResult(hold, capture, replayed, scale)

    def _pending_hold(self, conn: Any, hold_id: str, now: str) -> tuple[_Ledger, Hold]:
        """Lock a hold's ledger, then read the hold, which must still be pending."""
        hold = self._hold(conn, hold_id)
        ledger = self._lock_ledger(conn, hold.account_id, hold.mode, now)
        # Re-read under the ledger lock: every change to a hold takes that lock first.
        hold = self._hold(conn, hold_id)
        if hold.status is not HoldStatus.PENDING:
            raise StateConflict(f"hold {hold_id} is {hold.status}, not pending", "hold")
        return ledger, hold

    def capture_hold(
        self,
        hold_id: str,
        amount_minor: int | None,
        reference: str | None,
        metadata: dict[str, Any],
        idem: Idempotency,
    ) -> HoldResult:
        now = utc_timestamp()
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "entry")
            if replayed is not None:
                entry = self._entry(conn, replayed)
                assert entry.hold_id is not None
                posted = self._posted(conn, entry, replayed=True)
                return self._hold_result(conn, entry.hold_id, posted, replayed=True)
            ledger, hold = self._pending_hold(conn, hold_id, now)
            captured = capture_amount(hold.amount_minor, amount_minor)
            released = replace(ledger, held_minor=ledger.held_minor - hold.amount_minor)
            after = next_balance(released.state, EntryKind.CHARGE, captured)
            self._x(
                conn,
                "UPDATE holds SET status = 'captured', captured_minor = ?, resolved_at = ?"
                " WHERE id = ? AND status = 'pending'",
                (captured, now, hold_id),
            )
            new = NewEntry(
                hold.account_id,
                hold.mode,
                EntryKind.CHARGE,
                captured,
                None,
                reference if reference is not None else hold.reference,
                metadata or hold.metadata,
            )
            entry = self._append(
                conn, ledger, new, after, now, held_after_minor=released.held_minor, hold_id=hold_id
            )
            self._remember(conn, idem, "entry", entry.id)
            posted = PostedEntry(entry, ledger.payment, ledger.asset, ledger.scale, False)
            return self._hold_result(conn, hold_id, posted, replayed=False)

    def void_hold(self, hold_id: str, idem: Idempotency) -> HoldResult:
        now = utc_timestamp()
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "hold")
            if replayed is not None:
                return self._hold_result(conn, replayed, None, replayed=True)
            ledger, hold = self._pending_hold(conn, hold_id, now)
            self._x(
                conn,
                "UPDATE holds SET status = 'voided', resolved_at = ?"
                " WHERE id = ? AND status = 'pending'",
                (now, hold_id),
            )
            self._set_held(
                conn, ledger, ledger.held_minor - hold.amount_minor, now, {"hold": hold_id}
            )
            self._remember(conn, idem, "hold", hold_id)
            return self._hold_result(conn, hold_id, None, replayed=False, scale=ledger.scale)

    def expire_holds(self, limit: int = MAX_EXPIRE_BATCH) -> int:
        """Expire the due holds of up to ``limit`` ledgers, one short transaction each."""
        assert 1 <= limit <= MAX_EXPIRE_BATCH
        now = utc_timestamp()
        with self._read() as conn:
            due = self._x(
                conn,
                "SELECT DISTINCT account_id, mode FROM (SELECT account_id, mode FROM holds"
                " WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at LIMIT ?) d",
                (now, limit),
            ).fetchall()
        expired = 0
        for account_id, mode in due:
            with self._write() as conn:
                ledger = self._read_ledger(conn, account_id, Mode(mode))
                expired += self._expire_due(conn, ledger, now)[1]
        return expired

    def get_hold(self, hold_id: str) -> Hold:
        with self._read() as conn:
            return self._hold(conn, hold_id)

    def _hold(self, conn: Any, hold_id: str) -> Hold:
        row = self._x(conn, _HOLD_SQL + " WHERE id = ?", (hold_id,)).fetchone()
        if row is None:
            raise NotFound(f"no hold {hold_id}", "hold")
        return _hold_from_row(row)

    def list_holds(
        self,
        account_id: str,
        mode: Mode,
        status: HoldStatus | None,
        cursor: str | None,
        limit: int,
    ) -> Page[Hold]:
        sql = _HOLD_SQL + " WHERE account_id = ? AND mode = ? AND id < ?"
        args: list[Any] = [account_id, mode.value, cursor or "~"]
        if status is not None:
            sql += " AND status = ?"
            args.append(status.value)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._read() as conn:
            rows = self._x(conn, sql, [*args, limit + 1]).fetchall()
        items = [_hold_from_row(r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    # ------------------------------------------------------------------ alerts

    def create_alert_rule(self, new: NewAlertRule, max_rules: int) -> AlertRule:
        """Add a threshold; it starts low if the available amount is already below it."""
        now = utc_timestamp()
        with self._write() as conn:
            # The bound is per account, and an account has two ledgers (live and test):
            # one lock per account keeps concurrent creations on both from passing it.
            self._lock_key(conn, f"{_LIMIT_LOCK}alert-rules:{new.account_id}")
            ledger = self._lock_ledger(conn, new.account_id, new.mode, now)
            count = self._x(
                conn,
                "SELECT COUNT(*) FROM alert_rules WHERE account_id = ? AND deleted_at IS NULL",
                (new.account_id,),
            ).fetchone()[0]
            if count >= max_rules:
                raise InvalidParameter(f"an account has at most {max_rules} alert rules", "below")
            rule_id = new_id("alr")
            low = is_low(new.below_minor, ledger.balance_minor - ledger.held_minor)
            recharge = new.recharge
            self._x(
                conn,
                "INSERT INTO alert_rules (id, account_id, mode, below_minor, hysteresis_minor,"
                " low, created_at, deleted_at, recharge_amount_minor, recharge_up_to_minor,"
                " recharge_max_failures) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                (
                    rule_id,
                    new.account_id,
                    new.mode.value,
                    new.below_minor,
                    new.hysteresis_minor,
                    int(low),
                    now,
                    None if recharge is None else recharge.amount_minor,
                    None if recharge is None else recharge.up_to_minor,
                    3 if recharge is None else recharge.max_failures,
                ),
            )
            rule = self._alert_rule(conn, rule_id)
            if low and rule.recharge is not None:
                # Created on a ledger already below the line: ask now, not at the next dip.
                cause = {"alert_created": rule_id}
                moved = self._moved(
                    conn, ledger, ledger.balance_minor, ledger.held_minor, now, cause
                )
                self._request_topup(conn, rule, rule.recharge, moved)
            return rule

    def _alert_rule(self, conn: Any, rule_id: str) -> AlertRule:
        row = self._x(
            conn, _RULE_SQL + " WHERE id = ? AND deleted_at IS NULL", (rule_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no alert rule {rule_id}", "alert")
        return _rule_from_row(row)

    def list_alert_rules(self, account_id: str) -> list[AlertRule]:
        with self._read() as conn:
            self._account(conn, account_id)
            rows = self._x(
                conn,
                _RULE_SQL + " WHERE account_id = ? AND deleted_at IS NULL ORDER BY id",
                (account_id,),
            ).fetchall()
        return [_rule_from_row(r) for r in rows]

    def delete_alert_rule(self, rule_id: str) -> AlertRule:
        """Stop a rule; its past events keep naming it."""
        with self._write() as conn:
            rule = self._alert_rule(conn, rule_id)
            self._x(
                conn,
                "UPDATE alert_rules SET deleted_at = ? WHERE id = ?",
                (utc_timestamp(), rule_id),
            )
            return rule

    def deliveries_of(self, event_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        """The deliveries of these events (at most :data:`MAX_STATEMENT_PAGE`), by event."""
        assert len(event_ids) <= MAX_STATEMENT_PAGE
        found: dict[str, list[Delivery]] = {event_id: [] for event_id in event_ids}
        if not event_ids:
            return found
        marks = ", ".join(["?"] * len(event_ids))
        with self._read() as conn:
            rows = self._x(
                conn,
                _DELIVERY_SQL + f" WHERE event_id IN ({marks}) ORDER BY id",
                list(event_ids),
            ).fetchall()
        for row in rows:
            found[row[1]].append(Delivery(*row))
        return found

    def list_events(self, account_id: str | None, cursor: str | None, limit: int) -> Page[Event]:
        """Events newest first, of one account or of all."""
        sql = _EVENT_SQL + " WHERE id < ?"
        args: list[Any] = [cursor or "~"]
        if account_id is not None:
            sql += " AND account_id = ?"
            args.append(account_id)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._read() as conn:
            rows = self._x(conn, sql, [*args, limit + 1]).fetchall()
        items = [Event(r[0], r[1], r[2], Mode(r[3]), r[4], r[5], r[6]) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    # ------------------------------------------------------------------ webhooks

    def create_webhook(self, new: NewWebhook, max_webhooks: int) -> Webhook:
        """A subscription, counted against ``max_webhooks`` in the same transaction."""
        with self._write() as conn:
            self._lock_key(conn, f"{_LIMIT_LOCK}webhooks")
            live = self._x(
                conn, "SELECT COUNT(*) FROM webhooks WHERE deleted_at IS NULL"
            ).fetchone()[0]
            if live >= max_webhooks:
                raise InvalidParameter(f"there are at most {max_webhooks} webhooks", "url")
            if new.account_id is not None:
                self._account(conn, new.account_id)
            webhook_id = new_id("whk")
            self._x(
                conn,
                "INSERT INTO webhooks (id, url, account_id, events, secret, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    webhook_id,
                    new.url,
                    new.account_id,
                    ",".join(new.events),
                    new.secret,
                    utc_timestamp(),
                ),
            )
            return self._webhook(conn, webhook_id)

    def _webhook(self, conn: Any, webhook_id: str) -> Webhook:
        row = self._x(
            conn, _WEBHOOK_SQL + " WHERE id = ? AND deleted_at IS NULL", (webhook_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no webhook {webhook_id}", "webhook")
        return _webhook_from_row(row)

    def list_webhooks(self) -> list[Webhook]:
        with self._read() as conn:
            rows = self._x(conn, _WEBHOOK_SQL + " WHERE deleted_at IS NULL ORDER BY id").fetchall()
        return [_webhook_from_row(r) for r in rows]

    def delete_webhook(self, webhook_id: str) -> Webhook:
        """Stop a subscription; its pending deliveries are dead-lettered."""
        now = utc_timestamp()
        with self._write() as conn:
            webhook = self._webhook(conn, webhook_id)
            self._x(conn, "UPDATE webhooks SET deleted_at = ? WHERE id = ?", (now, webhook_id))
            self._x(
                conn,
                "UPDATE deliveries SET status = 'dead', last_error = 'webhook deleted'"
                " WHERE webhook_id = ? AND status = 'pending'",
                (webhook_id,),
            )
            return webhook

    def claim_deliveries(
        self,
        now: str,
        lease_until: str,
        limit: int,
        *,
        max_attempts: int,
        per_webhook: int,
        in_flight: Mapping[str, int],
    ) -> list[DueDelivery]:
        """Take up to ``limit`` due deliveries for one attempt each.

        Each subscription gets at most ``per_webhook`` less its ``in_flight`` count, so a
        backlog of one receiver never crowds out another; the oldest due go first. The
        claim counts the attempt and notes that no result came back yet, and moves the
        next attempt to ``lease_until``: another node (or this one after a crash) retries
        it only if the result is never recorded, and the attempt is on record either
        way. A delivery whose ``max_attempts``-th attempt never recorded a result is
        dead-lettered here instead of claimed.
        """
        assert 1 <= limit <= MAX_EXPIRE_BATCH and 1 <= per_webhook <= limit
        # Most polls find nothing: look first with a read, so an idle poll never takes
        # the write lock (SQLite has one for the whole database).
        with self._read() as conn:
            webhooks = [
                row[0]
                for row in self._x(
                    conn, _DUE_WEBHOOKS_SQL, (now, limit + len(in_flight))
                ).fetchall()
                if in_flight.get(row[0], 0) < per_webhook
            ]
        claimed: list[DueDelivery] = []
        if not webhooks:
            return claimed
        with self._write() as conn:
            for webhook_id in webhooks:
                room = min(per_webhook - in_flight.get(webhook_id, 0), limit - len(claimed))
                if room <= 0:
                    break
                rows = self._x(
                    conn, _DUE_SQL + self.skip_locked, (webhook_id, now, room)
                ).fetchall()
                for row in rows:
                    attempts = int(row[1])
                    if attempts >= max_attempts:
                        self._x(
                            conn,
                            "UPDATE deliveries SET status = 'dead', last_error = ? WHERE id = ?",
                            (_CUT_OFF + "; no attempts left", row[0]),
                        )
                        continue
                    self._x(
                        conn,
                        "UPDATE deliveries SET next_attempt_at = ?, attempts = ?,"
                        " last_status = NULL, last_error = ? WHERE id = ?",
                        (lease_until, attempts + 1, _CUT_OFF, row[0]),
                    )
                    claimed.append(DueDelivery(row[0], attempts, webhook_id, *row[2:]))
        return claimed

    def record_attempt(
        self,
        delivery_id: str,
        *,
        attempt: int,
        delivered: bool,
        status: int | None,
        error: str | None,
        retry_at: str | None,
    ) -> bool:
        """Attempt number ``attempt``'s result: delivered, retried at ``retry_at``, or
        (None) dead. False when the delivery has moved on since the claim (redelivered,
        deleted, or claimed again after the lease ran out), and nothing is changed."""
        now = utc_timestamp()
        if delivered:
            outcome, next_at, delivered_at = "delivered", now, now
        elif retry_at is not None:
            outcome, next_at, delivered_at = "pending", retry_at, None
        else:
            outcome, next_at, delivered_at = "dead", now, None
        with self._write() as conn:
            cursor = self._x(
                conn,
                "UPDATE deliveries SET status = ?, next_attempt_at = ?, last_status = ?,"
                " last_error = ?, delivered_at = ?"
                " WHERE id = ? AND status = 'pending' AND attempts = ?",
                (outcome, next_at, status, error, delivered_at, delivery_id, attempt),
            )
            return self._rowcount(conn, cursor) == 1

    def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery again now, with a fresh set of attempts."""
        now = utc_timestamp()
        with self._write() as conn:
            row = self._x(
                conn,
                "SELECT w.deleted_at FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id"
                " WHERE d.id = ?",
                (delivery_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no delivery {delivery_id}", "delivery")
            if row[0] is not None:
                raise StateConflict("its webhook was deleted", "delivery")
            self._x(
                conn,
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                " delivered_at = NULL WHERE id = ?",
                (now, delivery_id),
            )
            return self._delivery(conn, delivery_id)

    def _delivery(self, conn: Any, delivery_id: str) -> Delivery:
        row = self._x(conn, _DELIVERY_SQL + " WHERE id = ?", (delivery_id,)).fetchone()
        if row is None:
            raise NotFound(f"no delivery {delivery_id}", "delivery")
        return Delivery(*row)

    def list_deliveries(
        self, status: str | None, webhook_id: str | None, cursor: str | None, limit: int
    ) -> Page[Delivery]:
        sql = _DELIVERY_SQL + " WHERE id < ?"
        args: list[Any] = [cursor or "~"]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if webhook_id is not None:
            sql += " AND webhook_id = ?"
            args.append(webhook_id)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._read() as conn:
            rows = self._x(conn, sql, [*args, limit + 1]).fetchall()
        items = [Delivery(*r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    # ------------------------------------------------------------------ monitoring

    def outbox_stats(self) -> OutboxStats:
        with self._read() as conn:
            # Both read the partial index of pending deliveries, however many were sent.
            pending, oldest = self._x(
                conn, "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status = 'pending'"
            ).fetchone()
        return OutboxStats(int(pending), oldest)

    def ledger_balances(self, limit: int) -> list[LedgerBalance]:
        assert 0 <= limit <= MAX_LEDGER_GAUGES
        with self._read() as conn:
            rows = self._x(
                conn,
                "SELECT b.account_id, b.mode, a.asset, a.scale, b.balance_minor, b.held_minor"
                " FROM balances b JOIN accounts a ON a.id = b.account_id"
                " ORDER BY b.account_id, b.mode LIMIT ?",
                (limit,),
            ).fetchall()
        return [LedgerBalance(r[0], Mode(r[1]), *r[2:]) for r in rows]

    # ------------------------------------------------------------------ verify

    def verify(self) -> list[str]:
        problems: list[str] = []
        with self._snapshot() as conn:
            ledgers = self._x(
                conn,
                "SELECT b.account_id, b.mode, b.balance_minor, b.seq, a.payment, b.held_minor,"
                " (SELECT COALESCE(SUM(h.amount_minor), 0) FROM holds h"
                "  WHERE h.account_id = b.account_id AND h.mode = b.mode"
                "  AND h.status = 'pending')"
                " FROM balances b JOIN accounts a ON a.id = b.account_id"
                " ORDER BY b.account_id, b.mode",
            ).fetchall()
            for account_id, mode, balance, seq, payment, held, pending in ledgers:
                facts = (
                    EntryFact(r[0], EntryKind(r[1]), r[2], r[3])
                    for r in self._x(
                        conn,
                        "SELECT seq, kind, amount_minor, balance_after_minor FROM entries"
                        " WHERE account_id = ? AND mode = ? ORDER BY seq",
                        (account_id, mode),
                    ).fetchall()
                )
                found = audit_ledger(facts, balance, seq, Payment(payment))
                if held != pending:
                    found.append(f"holds reserve {held} but pending holds sum to {pending}")
                problems += [f"{account_id} {mode}: {p}" for p in found]
            problems += self._verify_links(conn)
            problems += self._verify_daily_totals(conn)
        return problems

    #: The UTC day (``YYYY-MM-DD``) of an entry's ``created_at``, as the engine writes it.
    _ENTRY_DAY_SQL: ClassVar[str] = "substr(created_at, 1, 10)"

    def _verify_daily_totals(self, conn: Any) -> list[str]:
        """The per-day totals are exactly what the entries add up to, day by day."""
        recomputed = (
            "SELECT t.account_id, t.mode, t.day, t.kind, t.amount_minor, t.entries,"  # noqa: S608 -- constants only
            " t.last_seq, e.balance_after_minor FROM (SELECT account_id, mode,"
            f" {self._ENTRY_DAY_SQL} AS day, kind, SUM(amount_minor) AS amount_minor,"
            " COUNT(*) AS entries, MAX(seq) AS last_seq FROM entries"
            " GROUP BY account_id, mode, day, kind) t JOIN entries e"
            " ON e.account_id = t.account_id AND e.mode = t.mode AND e.seq = t.last_seq"
        )
        stored = (
            "SELECT account_id, mode, day, kind, amount_minor, entries, last_seq,"
            " balance_after_minor FROM daily_totals"
        )
        problems = []
        for first, second, what in (
            (recomputed, stored, "days of entries are missing or wrong in daily_totals"),
            (stored, recomputed, "rows of daily_totals match no day of entries"),
        ):
            count = self._x(
                conn,
                f"SELECT COUNT(*) FROM ({first} EXCEPT {second}) x",  # noqa: S608 -- constants only
            ).fetchone()[0]
            if count:
                problems.append(f"{count} {what}")
        return problems

    def _verify_links(self, conn: Any) -> list[str]:
        """Cross-row checks: orphans, refunds, captures, entry times."""
        problems: list[str] = []
        orphans = self._x(
            conn,
            "SELECT COUNT(*) FROM entries e LEFT JOIN balances b"
            " ON b.account_id = e.account_id AND b.mode = e.mode WHERE b.account_id IS NULL",
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} entries belong to no ledger")
        for refund_of, kind, charged, refunded, strangers in self._x(
            conn,
            "SELECT r.refund_of, MIN(c.kind), -MIN(c.amount_minor), SUM(r.amount_minor),"
            " SUM(CASE WHEN r.account_id = c.account_id AND r.mode = c.mode THEN 0 ELSE 1 END)"
            " FROM entries r JOIN entries c ON c.id = r.refund_of"
            " WHERE r.refund_of IS NOT NULL GROUP BY r.refund_of",
        ).fetchall():
            if kind != EntryKind.CHARGE.value or strangers:
                problems.append(f"refunds of {refund_of} do not refund a charge of their ledger")
            elif refunded > charged:
                problems.append(f"refunds of {refund_of} ({refunded}) exceed it ({charged})")
        for hold_id, status, captured, charged in self._x(
            conn,
            "SELECT h.id, h.status, h.captured_minor, -e.amount_minor FROM holds h"
            " LEFT JOIN entries e ON e.hold_id = h.id"
            " WHERE (h.status = 'captured') <> (e.id IS NOT NULL)"
            " OR (e.id IS NOT NULL AND (e.kind <> 'charge' OR e.account_id <> h.account_id"
            " OR e.mode <> h.mode OR -e.amount_minor <> h.captured_minor))",
        ).fetchall():
            problems.append(
                f"hold {hold_id} ({status}, captured {captured}) does not match its charge"
                f" ({charged})"
            )
        backwards = self._x(
            conn,
            "SELECT COUNT(*) FROM (SELECT created_at, LAG(created_at) OVER"
            " (PARTITION BY account_id, mode ORDER BY seq) AS previous FROM entries) t"
            " WHERE previous > created_at",
        ).fetchone()[0]
        if backwards:
            problems.append(f"{backwards} entries are older than the entry before them")
        return problems


_WEBHOOK_SQL: Final = "SELECT id, url, account_id, events, created_at FROM webhooks"
#: Subscriptions with due deliveries, the longest waiting first (one index probe each).
_DUE_WEBHOOKS_SQL: Final = (
    "SELECT id FROM (SELECT w.id, (SELECT MIN(d.next_attempt_at) FROM deliveries d"
    " WHERE d.webhook_id = w.id AND d.status = 'pending') AS due_at"
    " FROM webhooks w WHERE w.deleted_at IS NULL) AS due WHERE due_at <= ?"
    " ORDER BY due_at, id LIMIT ?"
)
_DUE_SQL: Final = (
    "SELECT d.id, d.attempts, w.url, w.secret, e.payload FROM deliveries d"
    " JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.id = d.event_id"
    " WHERE d.webhook_id = ? AND d.status = 'pending' AND d.next_attempt_at <= ?"
    " ORDER BY d.next_attempt_at, d.id LIMIT ?"
)
#: What a claimed delivery says until its attempt's result is recorded.
_CUT_OFF: Final = "no result recorded: the attempt was cut off (process stopped or lease lost)"
_DELIVERY_SQL: Final = (
    "SELECT id, event_id, webhook_id, status, attempts, next_attempt_at, last_status,"
    " last_error, created_at, delivered_at FROM deliveries"
)


def balance_view(row: Sequence[Any]) -> BalanceView:
    """A lookup's row (:data:`LOOKUP_COLUMNS` first) as what ``GET /balance`` shows."""
    return BalanceView(Payment(row[0]), row[1], row[2], row[3] - row[4])


def _webhook_from_row(row: Any) -> Webhook:
    events = tuple(row[3].split(",")) if row[3] else ()
    return Webhook(row[0], row[1], row[2], events, row[4])


_RULE_SQL: Final = (
    "SELECT id, account_id, mode, below_minor, hysteresis_minor, low, created_at,"
    " recharge_amount_minor, recharge_up_to_minor, recharge_max_failures, recharge_failures,"
    " recharge_disabled_at FROM alert_rules"
)
_EVENT_SQL: Final = "SELECT id, type, account_id, mode, rule_id, payload, created_at FROM events"


def _rule_from_row(row: Any) -> AlertRule:
    recharge = None
    if row[7] is not None or row[8] is not None:
        recharge = Recharge(row[7], row[8], row[9], row[10], row[11])
    return AlertRule(row[0], row[1], Mode(row[2]), row[3], row[4], bool(row[5]), row[6], recharge)


@dataclass(frozen=True, slots=True)
class _Moved:
    """A ledger's move, as the events it raises describe it."""

    ledger: _Ledger
    balance_minor: int
    held_minor: int
    now: str
    cause: dict[str, Any]
    #: (webhook id, its comma-separated event filter) of the ledger's account.
    subscribers: Sequence[tuple[str, str]]


def _event_payload(
    event_id: str,
    crossing: Crossing,
    ledger: _Ledger,
    balance_minor: int,
    held_minor: int,
    now: str,
    cause: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> str:
    """The JSON body of an event, fixed when it is written."""
    scale = ledger.scale
    data: dict[str, Any] = {
        "account_id": ledger.account_id,
        "mode": ledger.mode.value,
        "payment": ledger.payment.value,
        "type": balance_type(ledger.asset),
        "available": format_amount(balance_minor - held_minor, scale),
        "balance": format_amount(balance_minor, scale),
        "pending": format_amount(held_minor, scale),
        "cause": cause,
    }
    if crossing.rule_id is not None:
        assert crossing.threshold_minor is not None
        data["alert_id"] = crossing.rule_id
        data["threshold"] = format_amount(crossing.threshold_minor, scale)
    if ledger.credit_limit_minor is not None:
        data["credit_limit"] = format_amount(ledger.credit_limit_minor, scale)
    data.update(extra or {})
    body = {"id": event_id, "type": crossing.type.value, "created_at": now, "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


#: The point-in-time lookup: one seek on ``entries_at`` (account, mode, created_at, seq).
_FIRST_SEQ_FROM_SQL: Final = (
    "SELECT seq FROM entries WHERE account_id = ? AND mode = ? AND created_at >= ?"
    " ORDER BY created_at, seq LIMIT 1"
)
#: The ledger's last entry before a moment: ``balance_after_minor, seq``.
_LAST_BEFORE_SQL: Final = (
    "SELECT balance_after_minor, seq FROM entries WHERE account_id = ? AND mode = ?"
    " AND created_at < ? ORDER BY created_at DESC, seq DESC LIMIT 1"
)
BALANCE_AT_SQL: Final = (
    "SELECT balance_after_minor, seq, created_at FROM entries"
    " WHERE account_id = ? AND mode = ? AND created_at <= ?"
    " ORDER BY created_at DESC, seq DESC LIMIT 1"
)


def statements(script: str, complete: Any) -> Iterator[str]:
    """Split a migration script into statements with the engine's completeness test."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if complete(buffer):
            yield buffer
            buffer = ""
    assert not buffer.strip() or buffer.strip().startswith("--"), "unterminated statement"


def _entry_row(entry: Entry) -> tuple[Any, ...]:
    return (
        entry.id,
        entry.account_id,
        entry.mode.value,
        entry.seq,
        entry.kind.value,
        entry.amount_minor,
        entry.balance_after_minor,
        entry.refund_of,
        entry.reference,
        dumps(entry.metadata),
        entry.created_at,
        entry.hold_id,
    )


def _after(ledger: _Ledger, entry: Entry, held_minor: int) -> _Ledger:
    """The ledger once ``entry`` is appended to it (refused past the day's turnover)."""
    turnover = turnover_after(ledger.turnover, entry.created_at[:10], entry.amount_minor)
    return replace(
        ledger,
        balance_minor=entry.balance_after_minor,
        seq=entry.seq,
        held_minor=held_minor,
        last_entry_at=entry.created_at,
        turnover_day=turnover.day,
        turnover_in_minor=turnover.in_minor,
        turnover_out_minor=turnover.out_minor,
    )


class _EntryBatch:
    """One group commit: the entries of :meth:`SQLStore.post_entries`, in one transaction.

    Every query is per batch, not per entry: the keys are locked and looked up at once,
    the ledgers are locked at once (in one global order, so batches on several nodes
    cannot deadlock), each ledger's row is moved once, and the entries and keys are
    inserted together. The rules of :mod:`birdbalance.ledger` and :mod:`birdbalance.alerts`
    run per entry, in order, on the ledgers as the batch has moved them so far.
    """

    def __init__(self, store: SQLStore, conn: Any, now: str) -> None:
        self.store = store
        self.conn = conn
        self.now = now
        self.entry_rows: list[tuple[Any, ...]] = []
        self.key_rows: list[tuple[Any, ...]] = []

    def post(
        self, batch: Sequence[tuple[NewEntry, Idempotency]]
    ) -> list[PostedEntry | ServiceError]:
        store, conn = self.store, self.conn
        keys = [idem.key for _, idem in batch]
        wanted = sorted({(new.account_id, new.mode) for new, _ in batch})
        # Four statements sent together where the engine pipelines, run in this order: the
        # keys' locks come before their lookup, the ledgers' locks before their rules.
        store._lock_keys(conn, keys)
        known_read = self._send_known_keys_read(keys)
        ledgers_read = store._send_ledgers_read(conn, wanted)
        rules_read = store._send_alert_rules_read(conn, wanted)
        known = {r[0]: (r[1], r[2], str(r[3])) for r in known_read.fetchall()}
        locked = _ledgers_from(ledgers_read.fetchall())
        rules = _rules_from(rules_read.fetchall())
        if self._expire_holds(locked):
            rules = store._alert_rules(conn, wanted)  # expiring holds may have moved them
        ledgers = dict(locked)
        results: list[PostedEntry | ServiceError | str] = []
        for new, idem in batch:
            try:
                results.append(self._one(new, idem, known, ledgers, rules))
            except ServiceError as exc:
                results.append(exc)
        self._flush()
        moves = [
            store._x(conn, _MOVE_LEDGER_SQL, _move_row(start, ledgers[key]))
            for key, start in locked.items()
            if ledgers[key] != start
        ]
        assert all(store._rowcount(conn, m) == 1 for m in moves), "a ledger moved under its lock"
        # Replays (of earlier batches or of an entry earlier in this one) read their entry.
        return [
            store._posted(conn, store._entry(conn, r), replayed=True) if isinstance(r, str) else r
            for r in results
        ]

    def _one(
        self,
        new: NewEntry,
        idem: Idempotency,
        known: dict[str, tuple[str, str, str]],
        ledgers: dict[LedgerKey, _Ledger],
        rules: dict[LedgerKey, list[RuleState]],
    ) -> PostedEntry | str:
        """Post one entry of the batch; the id of the entry to replay if its key was used."""
        seen = known.get(idem.key)
        if seen is not None:
            fingerprint, kind, resource_id = seen
            if fingerprint != idem.fingerprint or kind != "entry":
                raise IdempotencyConflict()
            return resource_id
        key = (new.account_id, new.mode)
        ledger = ledgers.get(key)
        if ledger is None:
            raise NotFound(f"no account {new.account_id}", "account")
        if new.kind is EntryKind.REFUND and new.refund_of is not None:
            self._flush()  # the refunded charge may be earlier in this batch
        target = self.store._refund_target(self.conn, new)
        after = next_balance(ledger.state, new.kind, new.amount_minor, refund_target=target)
        entry = self.store._next_entry(ledger, new, after, self.now, None)
        moved = _after(ledger, entry, ledger.held_minor)  # may refuse: before any write
        self.entry_rows.append(_entry_row(entry))
        self.key_rows.append((idem.key, idem.fingerprint, "entry", entry.id, self.now))
        known[idem.key] = (idem.fingerprint, "entry", entry.id)
        # Without rules of its own, a ledger can still raise the built-in events.
        updated = self.store._write_crossings(
            self.conn,
            ledger,
            rules.get(key, []),
            after,
            ledger.held_minor,
            self.now,
            {"entry": entry.id},
        )
        if key in rules:
            rules[key] = updated
        ledgers[key] = moved
        return PostedEntry(entry, ledger.payment, ledger.asset, ledger.scale, False)

    def _send_known_keys_read(self, keys: list[str]) -> Any:
        marks = ", ".join(["?"] * len(keys))
        return self.store._x(
            self.conn,
            "SELECT key, fingerprint, resource_type, resource_id FROM idempotency_keys"  # noqa: S608 -- placeholders only
            f" WHERE key IN ({marks})",
            keys,
        )

    def _expire_holds(self, locked: dict[LedgerKey, _Ledger]) -> int:
        """Expire the due holds of the locked ledgers (in place); how many expired."""
        expired = 0
        for key, ledger in locked.items():
            if ledger.held_minor:
                locked[key], count = self.store._expire_due(self.conn, ledger, self.now)
                expired += count
        return expired

    def _flush(self) -> None:
        if self.entry_rows:
            # One statement for all the entries: PostgreSQL's per-day totals trigger runs
            # once per statement, so once per batch rather than once per entry.
            self.store._x(
                self.conn,
                _values_rows(_INSERT_ENTRY_SQL, len(self.entry_rows)),
                [value for row in self.entry_rows for value in row],
            )
            self.store._x_many(self.conn, _INSERT_KEY_SQL, self.key_rows)
            self.entry_rows, self.key_rows = [], []


def _values_rows(insert_sql: str, count: int) -> str:
    """``INSERT ... VALUES (?, ...)`` with ``count`` rows of values."""
    head, sep, values = insert_sql.rpartition(" VALUES ")
    assert sep and values.startswith("(") and 1 <= count <= MAX_WRITE_BATCH
    return head + sep + ", ".join([values] * count)


def _move_row(start: _Ledger, end: _Ledger) -> tuple[Any, ...]:
    """:data:`_MOVE_LEDGER_SQL`'s arguments: from ``start`` (as locked) to ``end``."""
    return (
        end.balance_minor,
        end.seq,
        end.held_minor,
        end.last_entry_at,
        end.turnover_day,
        end.turnover_in_minor,
        end.turnover_out_minor,
        start.account_id,
        start.mode.value,
        start.seq,
    )


def _ledgers_from(rows: Iterable[Any]) -> dict[LedgerKey, _Ledger]:
    ledgers = (_Ledger(r[0], Mode(r[1]), Payment(r[2]), *r[3:]) for r in rows)
    return {(ledger.account_id, ledger.mode): ledger for ledger in ledgers}


def _rules_from(rows: Iterable[Any]) -> dict[LedgerKey, list[RuleState]]:
    found: dict[LedgerKey, list[RuleState]] = {}
    for row in rows:
        found.setdefault((row[0], Mode(row[1])), []).append(
            RuleState(row[2], row[3], row[4], bool(row[5]))
        )
    return found


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
        live=LedgerTotals(row[8], row[9], row[10]),
        test=LedgerTotals(row[11], row[12], row[13]),
    )


def _key_from_row(row: Any) -> ApiKey:
    return ApiKey(row[0], row[1], Mode(row[2]), row[3], row[4], row[5], row[6])


def _token_from_row(row: Any) -> AdminToken:
    return AdminToken(row[0], row[1], TokenScope(row[2]), row[3], row[4], row[5])


def _audit_from_row(row: Any) -> AuditRecord:
    return AuditRecord(
        actor=row[2],
        action=row[3],
        target=row[4],
        address=row[5],
        status=int(row[6]),
        detail=json.loads(row[7]),
        seq=int(row[0]),
        at=row[1],
    )


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
        hold_id=row[11],
    )


def _hold_from_row(row: Any) -> Hold:
    return Hold(
        id=row[0],
        account_id=row[1],
        mode=Mode(row[2]),
        amount_minor=row[3],
        status=HoldStatus(row[4]),
        captured_minor=row[5],
        expires_at=row[6],
        reference=row[7],
        metadata=json.loads(row[8]),
        created_at=row[9],
        resolved_at=row[10],
    )
