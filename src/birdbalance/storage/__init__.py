"""Storage behind a small protocol, one implementation per engine.

:class:`Store` is everything the service asks of a database. Each engine lives in its
own module (``storage/sqlite.py``; PostgreSQL joins it later) and raises only
:mod:`birdbalance.errors` service errors (``NotFound``, ``IdempotencyConflict``,
``NotEnoughBalance``...), never engine exceptions, for expected outcomes.

Every ledger write happens in one database transaction that reads the ledger's state,
applies :func:`birdbalance.ledger.next_balance`, appends the entry, moves the stored
balance and records the ``Idempotency-Key``. Later features that must commit with the
entry (an outbox of events) add their rows inside that same transaction.
"""

from __future__ import annotations

from typing import Protocol

from birdbalance.ledger import Mode
from birdbalance.records import (
    Account,
    ApiKey,
    BalanceView,
    Entry,
    Idempotency,
    NewAccount,
    NewEntry,
    NewKey,
    Page,
    PostedEntry,
)
from birdbalance.settings import Settings, SettingsError

#: Largest page any listing returns.
MAX_PAGE_SIZE = 500


class Store(Protocol):
    """What birdbalance needs from a database engine."""

    def schema_version(self) -> tuple[int, int]:
        """``(current, latest)`` schema versions; current is 0 on an empty database."""

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names of those applied."""

    def lookup_balance(self, key_hash: bytes) -> BalanceView | None:
        """The ledger a live (not revoked) key reads, by one indexed lookup."""

    def create_account(self, new: NewAccount, idem: Idempotency | None) -> Account: ...

    def get_account(self, account_id: str) -> Account:
        """Raises ``NotFound``."""

    def list_accounts(self, cursor: str | None, limit: int, search: str | None) -> Page[Account]:
        """Accounts in creation order, ``limit`` <= :data:`MAX_PAGE_SIZE`."""

    def count_accounts(self) -> int: ...

    def create_key(self, new: NewKey, idem: Idempotency | None) -> tuple[ApiKey, bool]:
        """Store a key digest; the bool is True when an idempotent replay found it."""

    def list_keys(self, account_id: str) -> list[ApiKey]: ...

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke (idempotently); raises ``NotFound``."""

    def post_entry(self, new: NewEntry, idem: Idempotency) -> PostedEntry:
        """Append an entry under the ledger rules, atomically and idempotently."""

    def list_entries(
        self, account_id: str, mode: Mode, cursor: str | None, limit: int
    ) -> Page[Entry]:
        """A ledger's entries, newest first, ``limit`` <= :data:`MAX_PAGE_SIZE`.

        An unknown account has no entries; callers check the account first.
        """

    def verify(self) -> list[str]:
        """Recompute every ledger from its entries; return the problems found."""

    def close(self) -> None: ...


def open_store(settings: Settings) -> Store:
    """The store for ``settings.database_url``; connects lazily."""
    url = settings.database_url
    if url.startswith("sqlite:"):
        from birdbalance.storage.sqlite import SQLiteStore, path_from_url

        return SQLiteStore(
            path_from_url(url),
            synchronous=settings.sqlite_synchronous,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )
    if url.startswith(("postgresql:", "postgres:")):
        raise SettingsError("PostgreSQL is not supported yet; use a sqlite:/// URL")
    raise SettingsError(f"unsupported database URL scheme in {url.split(':', 1)[0]!r}")
