"""Access keys and admin tokens (stored as digests under the key secret), and the
``GET /balance`` lookup from a key's digest."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any, Final

from birdbalance.errors import KeySecretMismatch, NotFound, SettingsError, StateConflict
from birdbalance.ids import new_id, utc_timestamp
from birdbalance.keys import KeyHasher
from birdbalance.ledger import Mode, Payment
from birdbalance.records import (
    AdminToken,
    ApiKey,
    BalanceView,
    Idempotency,
    NewKey,
    NewToken,
    TokenScope,
)
from birdbalance.spending import SpendPeriod, period_end, period_key, spendable, stored_limit

from .base import Connection
from .moves import LedgerMoves

#: What ``GET /balance`` reads for a key digest: payment, asset, scale, available.
#: Balance and held apart: their difference is taken in Python, where a damaged row cannot
#: overflow a query that other keys' lookups share.
#: A shared sub-account's key also gives what its second read needs (its parent, its own
#: id and mode, its limit): :func:`shared_lookup`.
LOOKUP_COLUMNS: Final = (
    "a.payment, a.asset, a.scale, b.balance_minor, b.held_minor, a.funding_id, k.account_id,"
    " k.mode, a.spend_limit_minor, a.spend_limit_period"
)
#: How many columns :data:`LOOKUP_COLUMNS` is.
LOOKUP_WIDTH: Final = 10

#: A shared sub-account's second read: its parent's ledger and its usage in the period
#: (parameters: its id, mode, period key; then the parent's id, the mode).
SHARED_LOOKUP_SQL: Final = (
    "SELECT b.balance_minor, b.held_minor, (SELECT s.spent_minor FROM spending s"
    " WHERE s.account_id = ? AND s.mode = ? AND s.period = ?)"
    " FROM balances b WHERE b.account_id = ? AND b.mode = ?"
)


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


#: Most admin tokens listed (revoked ones included).
MAX_TOKENS: Final = 1000


#: The schema version that stores keys under the key secret.
KEY_SECRET_VERSION: Final = 7


_KEY_SQL: Final = (
    "SELECT id, account_id, mode, hint, created_at, revoked_at, expires_at FROM api_keys"
)


_LIVE_KEY: Final = " revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"


_TOKEN_SQL: Final = (
    "SELECT id, name, scope, hint, created_at, revoked_at, account_id FROM admin_tokens"  # noqa: S105 -- SQL
)


#: The name under which ``server_meta`` keeps the key secret's check value.
_KEY_SECRET_CHECK: Final = "key_secret_check"  # noqa: S105 -- a row name


def balance_view(row: Sequence[Any]) -> BalanceView:
    """A lookup's row (:data:`LOOKUP_COLUMNS` first) as what ``GET /balance`` shows (a
    shared sub-account's row needs :func:`shared_lookup` instead)."""
    return BalanceView(Payment(row[0]), row[1], row[2], row[3] - row[4])


def shared_lookup(row: Sequence[Any], now: str) -> tuple[str, tuple[Any, ...], str] | None:
    """For a shared sub-account's lookup row: :data:`SHARED_LOOKUP_SQL`'s parameters, and
    when its answer stops holding without a commit (its period's end). None otherwise."""
    if row[5] is None:
        return None
    limit = stored_limit(row[8], row[9])
    period = limit.period if limit is not None else SpendPeriod.ALL
    args = (row[6], row[7], period_key(period, now), row[5], row[7])
    return SHARED_LOOKUP_SQL, args, period_end(period, now)


def shared_view(row: Sequence[Any], shared: Sequence[Any] | None) -> BalanceView:
    """A shared sub-account's ``GET /balance``: the smaller of its parent's available
    amount and what its limit leaves (:func:`birdbalance.spending.spendable`)."""
    parent_available = 0 if shared is None else int(shared[0]) - int(shared[1])
    spent = 0 if shared is None or shared[2] is None else int(shared[2])
    amount = spendable(parent_available, stored_limit(row[8], row[9]), spent)
    return BalanceView(Payment(row[0]), row[1], row[2], amount)


def _key_from_row(row: Any) -> ApiKey:
    return ApiKey(row[0], row[1], Mode(row[2]), row[3], row[4], row[5], row[6])


def _token_from_row(row: Any) -> AdminToken:
    return AdminToken(row[0], row[1], TokenScope(row[2]), row[3], row[4], row[5], row[6])


class CredentialStore(LedgerMoves):
    """Access keys, admin tokens and the key secret they are digested under."""

    def balance_lookups(self) -> Any:
        """Async ``GET /balance`` lookups where the engine is networked; None otherwise."""
        return None

    def cache_balances(self, cache_size: int) -> bool:
        """Keep up to ``cache_size`` ``GET /balance`` answers, where the engine can tell
        when they go stale; False where it cannot (then every lookup queries)."""
        return False

    def lookup_balance(self, key_hash: bytes) -> BalanceView | None:
        now = utc_timestamp()
        with self._snapshot() as conn:
            row = self._execute(conn, LOOKUP_SQL, (key_hash, now)).fetchone()
            if row is None:
                return None
            second = shared_lookup(row, now)
            if second is None:
                return balance_view(row)
            return shared_view(row, self._execute(conn, second[0], second[1]).fetchone())

    def key_by_digest(self, key_hash: bytes) -> ApiKey | None:
        """The live (not revoked) key with this digest, or None."""
        with self._read() as conn:
            row = self._execute(
                conn, _KEY_SQL + " WHERE key_hash = ? AND" + _LIVE_KEY, (key_hash, utc_timestamp())
            ).fetchone()
        return None if row is None else _key_from_row(row)

    def create_key(self, new: NewKey, idem: Idempotency | None) -> tuple[ApiKey, bool]:
        with self._write() as conn:
            replayed = self._replayed_id(conn, idem, "key")
            if replayed is not None:
                return self._key(conn, replayed), True
            self._account(conn, new.account_id)
            key_id = self._insert_key(conn, new)
            self._remember(conn, idem, "key", key_id)
            return self._key(conn, key_id), False

    def _insert_key(self, conn: Connection, new: NewKey) -> str:
        """A new live key, within the ledger's :data:`MAX_LIVE_KEYS`."""
        # The account's row lock keeps two creations from both passing the count.
        self._lock_account(conn, new.account_id)
        live = self._execute(
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
        self._execute(
            conn,
            "INSERT INTO api_keys (id, account_id, mode, key_hash, hint, created_at,"
            " revoked_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
            (key_id, new.account_id, new.mode.value, new.key_hash, new.hint, utc_timestamp()),
        )
        return key_id

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
            self._execute(
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

    def _key(self, conn: Connection, key_id: str) -> ApiKey:
        row = self._execute(conn, _KEY_SQL + " WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFound(f"no key {key_id}", "key")
        return _key_from_row(row)

    def list_keys(self, account_id: str) -> list[ApiKey]:
        with self._read() as conn:
            self._account(conn, account_id)
            rows = self._execute(
                conn, _KEY_SQL + " WHERE account_id = ? ORDER BY id", (account_id,)
            )
            return [_key_from_row(r) for r in rows.fetchall()]

    def revoke_key(self, key_id: str, idem: Idempotency | None = None) -> ApiKey:
        with self._write() as conn:
            if (done := self._replayed_id(conn, idem, "key")) is not None:
                return self._key(conn, done)
            self._execute(
                conn,
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (utc_timestamp(), key_id),
            )
            key = self._key(conn, key_id)  # 404 for an unknown one, before it is remembered
            self._remember(conn, idem, "key", key_id)
            return key

    def _adopt_key_secret(self, conn: Connection) -> None:
        """Schema v7: move the keys' plain SHA-256 digests under the secret, and record it."""
        hasher = self.hasher
        rows = self._execute(conn, "SELECT id, key_hash FROM api_keys").fetchall()
        self._execute_many(
            conn,
            "UPDATE api_keys SET key_hash = ? WHERE id = ?",
            [(hasher.adopt(bytes(r[1])), r[0]) for r in rows],
        )
        self._execute(
            conn,
            "INSERT INTO server_meta (name, value) VALUES (?, ?)",
            (_KEY_SECRET_CHECK, hasher.check_value()),
        )

    def _after_migration(self, conn: Connection, version: int) -> None:
        """The steps of a migration that need more than SQL, in its transaction."""
        if version == KEY_SECRET_VERSION:
            self._adopt_key_secret(conn)

    def check_key_secret(self) -> None:
        """Raise ``KeySecretMismatch`` if the keys are stored under another secret."""
        with self._read() as conn:
            row = self._execute(
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

    def create_token(self, new: NewToken) -> AdminToken:
        with self._write() as conn:
            token_id = new_id("tok")
            if new.account_id is not None:
                self._account(conn, new.account_id)  # 404 for an unknown account
            self._execute(
                conn,
                "INSERT INTO admin_tokens (id, name, scope, token_hash, hint, created_at,"
                " revoked_at, account_id) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                (
                    token_id,
                    new.name,
                    new.scope.value,
                    new.token_hash,
                    new.hint,
                    utc_timestamp(),
                    new.account_id,
                ),
            )
            return self._token(conn, token_id)

    def get_token(self, token_id: str) -> AdminToken:
        with self._read() as conn:
            return self._token(conn, token_id)

    def _token(self, conn: Connection, token_id: str) -> AdminToken:
        row = self._execute(conn, _TOKEN_SQL + " WHERE id = ?", (token_id,)).fetchone()
        if row is None:
            raise NotFound(f"no admin token {token_id}", "token")
        return _token_from_row(row)

    def list_tokens(self) -> list[AdminToken]:
        with self._read() as conn:
            rows = self._execute(
                conn, _TOKEN_SQL + " ORDER BY id LIMIT ?", (MAX_TOKENS,)
            ).fetchall()
        return [_token_from_row(r) for r in rows]

    def revoke_token(self, token_id: str) -> AdminToken:
        with self._write() as conn:
            self._execute(
                conn,
                "UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (utc_timestamp(), token_id),
            )
            return self._token(conn, token_id)

    def token_by_digest(self, token_hash: bytes) -> AdminToken | None:
        with self._read() as conn:
            row = self._execute(
                conn,
                _TOKEN_SQL + " WHERE token_hash = ? AND revoked_at IS NULL",
                (token_hash,),
            ).fetchone()
        return None if row is None else _token_from_row(row)
