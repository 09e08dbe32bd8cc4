"""Storage behind a small protocol, one implementation per engine.

:class:`Store` is everything the service asks of a database. Each engine lives in its
own module (``storage/sqlite.py``, ``storage/postgres.py``) on the SQL they share in
``storage/sql.py``, and raises only
:mod:`birdbalance.errors` service errors (``NotFound``, ``IdempotencyConflict``,
``NotEnoughBalance``...), never engine exceptions, for expected outcomes.

Every ledger write happens in one database transaction that reads the ledger's state,
applies :func:`birdbalance.ledger.next_balance`, appends the entry, moves the stored
balance and records the ``Idempotency-Key``; the events it raises (the outbox) commit in
that same transaction. Concurrent entries share one transaction (group commit,
``append_entries``), each keeping its own checks and answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from birdbalance.errors import ServiceError, SettingsError
from birdbalance.keys import KeyHasher
from birdbalance.ledger import HoldStatus, Mode
from birdbalance.records import (
    Account,
    AdminToken,
    AlertRule,
    ApiKey,
    AuditRecord,
    BalanceAt,
    BalanceView,
    BulkOp,
    BulkOutcome,
    DailySeries,
    Delivery,
    DueDelivery,
    Entry,
    EntryFilter,
    Event,
    Hold,
    HoldResult,
    Idempotency,
    LedgerBalance,
    NewAccount,
    NewAlertRule,
    NewEntry,
    NewHold,
    NewKey,
    NewToken,
    NewTransfer,
    NewWebhook,
    OutboxStats,
    Page,
    PostedEntry,
    Statement,
    SubAccounts,
    Transfer,
    TransferResult,
    UsageBreakdown,
    Webhook,
)
from birdbalance.settings import Settings
from birdbalance.spending import SpendLimit

from .bulk import MAX_BULK_OPERATIONS as MAX_BULK_OPERATIONS
from .ledgers import MAX_WRITE_BATCH as MAX_WRITE_BATCH
from .sql import SQLStore
from .usage import MAX_USAGE_GROUPS as MAX_USAGE_GROUPS

#: Largest page any listing returns.
MAX_PAGE_SIZE = 500


class BalanceLookups(Protocol):
    """``GET /balance`` lookups that run on the event loop (networked engines)."""

    async def lookup(self, key_hash: bytes) -> BalanceView | None: ...

    async def close(self) -> None: ...


class DeliveryListener(Protocol):
    """Wakes a process when another one makes webhook deliveries due (networked
    engines: PostgreSQL's ``LISTEN``)."""

    async def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` on every signal until cancelled, reconnecting as needed."""
        ...


class Store(Protocol):
    """What birdbalance needs from a database engine."""

    @property
    def engine(self) -> str:
        """Engine name, which is also the folder of its migrations."""

    @property
    def max_concurrent_writes(self) -> int:
        """How many writes one process may run at once on this store."""

    def schema_version(self) -> tuple[int, int]:
        """``(current, latest)`` schema versions; current is 0 on an empty database."""

    def migrate(self, target: int | None = None) -> list[str]:
        """Apply pending migrations (up to ``target``); return the names of those applied."""

    def lookup_balance(self, key_hash: bytes) -> BalanceView | None:
        """The ledger a live (not revoked) key reads, by one indexed lookup."""

    def balance_lookups(self) -> BalanceLookups | None:
        """Async lookups for the serving loop, where the engine is networked (else None)."""

    def cache_balances(self, cache_size: int) -> bool:
        """Answer repeated lookups from memory while no commit happened anywhere.

        Only where the engine can see every commit cheaply; False (no cache) otherwise.
        """

    def create_account(self, new: NewAccount, idem: Idempotency | None) -> Account: ...

    def get_account(self, account_id: str) -> Account:
        """Raises ``NotFound``."""

    def list_accounts(
        self, cursor: str | None, limit: int, search: str | None, within: str | None = None
    ) -> Page[Account]:
        """Accounts in creation order, ``limit`` <= :data:`MAX_PAGE_SIZE`."""

    def count_accounts(self) -> int: ...

    def create_key(self, new: NewKey, idem: Idempotency | None) -> tuple[ApiKey, bool]:
        """Store a key digest; the bool is True when an idempotent replay found it."""

    def list_keys(self, account_id: str) -> list[ApiKey]: ...

    def get_key(self, key_id: str) -> ApiKey:
        """Raises ``NotFound``."""

    def revoke_key(self, key_id: str, idem: Idempotency | None = None) -> ApiKey:
        """Revoke (idempotently); raises ``NotFound``."""

    def rotate_key(
        self, key_id: str, new_hash: bytes, new_hint: str, expires_at: str, idem: Idempotency | None
    ) -> tuple[ApiKey, ApiKey, bool]:
        """A new key for the ledger of ``key_id``, which stays live until ``expires_at``.

        ``(new, old, replayed)``; raises ``NotFound``, or ``StateConflict`` for a key that
        is no longer live or a ledger at its live-key limit.
        """

    @property
    def hasher(self) -> KeyHasher:
        """Digests of access keys and admin tokens under this database's key secret."""

    def check_key_secret(self) -> None:
        """Raise ``KeySecretMismatch`` if the keys are stored under another secret."""

    def create_token(self, new: NewToken) -> AdminToken: ...

    def list_tokens(self) -> list[AdminToken]: ...

    def get_token(self, token_id: str) -> AdminToken:
        """Raises ``NotFound``."""

    def revoke_token(self, token_id: str) -> AdminToken:
        """Revoke (idempotently); raises ``NotFound``."""

    def token_by_digest(self, token_hash: bytes) -> AdminToken | None:
        """The unrevoked admin token with this digest, or None."""

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Add records to the append-only audit log, in one transaction."""

    def list_audit(
        self, cursor: int | None, limit: int, actor: str | None, action: str | None
    ) -> Page[AuditRecord]:
        """Audit records, newest first, ``limit`` <= :data:`MAX_PAGE_SIZE`."""

    def append_entry(self, new: NewEntry, idem: Idempotency) -> PostedEntry:
        """Append an entry under the ledger rules, atomically and idempotently."""

    def append_entries(
        self,
        batch: Sequence[tuple[NewEntry, Idempotency]],
        audits: Sequence[AuditRecord | None] | None = None,
    ) -> list[PostedEntry | ServiceError]:
        """Group commit: post up to :data:`MAX_WRITE_BATCH` entries in one transaction.

        Each gets the answer it would get alone, in order (a refusal in its place).
        ``audits``: each entry's audit record (or None), appended in the same transaction
        with the entry's status and outcome.
        """

    def post_bulk(
        self,
        groups: Sequence[Sequence[BulkOp | ServiceError]],
        idem: Idempotency | None,
        render: Callable[[BulkOutcome], bytes],
        *,
        dry_run: bool,
    ) -> tuple[bytes, bool]:
        """Post up to :data:`MAX_BULK_OPERATIONS` operations in one transaction, each
        group (linked operations) whole or not at all; the answer ``render`` made (stored
        under ``idem``, or rolled back for a dry run), and whether it was a replay."""
        ...

    def list_entries(
        self,
        account_id: str,
        mode: Mode,
        cursor: str | None,
        limit: int,
        filters: EntryFilter | None = None,
    ) -> Page[Entry]:
        """A ledger's entries, newest first, ``limit`` <= :data:`MAX_PAGE_SIZE`, narrowed
        by ``filters`` (each an index range, whatever the ledger's size).

        An unknown account has no entries; callers check the account first.
        """

    def daily_totals(
        self, account_id: str, mode: Mode, first_day: str, last_day: str
    ) -> DailySeries:
        """Per-UTC-day totals by kind over ``[first_day, last_day]`` and the balance before
        them, from the per-day table the entries' trigger keeps; raises ``NotFound``."""

    def key_by_digest(self, key_hash: bytes) -> ApiKey | None:
        """The live (not revoked, not expired) key with this digest, or None."""

    def deliveries_of(self, event_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        """The deliveries of up to 10,000 events, by event id."""

    def balance_at(self, account_id: str, mode: Mode, at: str) -> BalanceAt:
        """The balance after the ledger's last entry at or before ``at``; one index seek."""

    def create_hold(self, new: NewHold, idem: Idempotency) -> HoldResult:
        """Reserve an amount under the ledger rules, atomically and idempotently."""

    def usage_by(
        self, account_id: str, mode: Mode, key: str, start: str, end: str
    ) -> UsageBreakdown:
        """A ledger's usage over ``[start, end)`` by ``metadata[key]``, largest first, at
        most :data:`MAX_USAGE_GROUPS` groups."""

    def shared_balances(self, limit: int) -> list[Account]:
        """The first ``limit`` shared sub-accounts, with their spending now."""

    def ancestry(self, account_id: str) -> tuple[str, ...] | None:
        """The account and its ancestors, nearest first (None: no such account)."""

    def owners_of(self, kind: str, resource_id: str) -> list[str]:
        """The accounts a key, hold, alert, webhook, delivery or transfer belongs to."""

    def subtree_ids(self, root: str, limit: int) -> list[str]:
        """Up to ``limit`` accounts of ``root``'s subtree, itself first."""

    def set_spend_limit(
        self, account_id: str, limit: SpendLimit | None, idem: Idempotency | None = None
    ) -> Account:
        """Set or remove a shared sub-account's spending limit; raises ``NotFound``, or
        ``InvalidParameter`` for an account with a balance of its own."""

    def lowest_subaccounts(self, parent_id: str, offset: int, limit: int) -> SubAccounts:
        """A page of an account's direct sub-accounts, the lowest spendable first (the
        next page's offset as its cursor); raises ``NotFound``."""

    def list_subaccounts(self, parent_id: str, cursor: str | None, limit: int) -> SubAccounts:
        """A page of an account's direct sub-accounts, with the count and live totals of
        all of them; raises ``NotFound``."""

    def transfer(self, new: NewTransfer, idem: Idempotency) -> TransferResult:
        """Move an amount between two ledgers of one asset and mode: both legs in one
        transaction, under the source's floor, idempotently."""

    def get_transfer(self, transfer_id: str) -> TransferResult:
        """A transfer and its two legs; raises ``NotFound``."""

    def list_transfers(
        self, account_id: str | None, cursor: str | None, limit: int
    ) -> Page[Transfer]:
        """Transfers newest first, all or those from or to ``account_id``."""

    def capture_hold(
        self,
        hold_id: str,
        amount_minor: int | None,
        reference: str | None,
        metadata: dict[str, Any],
        idem: Idempotency,
    ) -> HoldResult:
        """Charge all (None) or part of a pending hold and release the rest."""

    def void_hold(self, hold_id: str, idem: Idempotency) -> HoldResult:
        """Release a pending hold without charging."""

    def expire_holds(self, limit: int = ...) -> int:
        """Expire due holds; return how many expired."""

    def get_hold(self, hold_id: str) -> Hold:
        """Raises ``NotFound``."""

    def list_holds(
        self,
        account_id: str,
        mode: Mode,
        status: HoldStatus | None,
        cursor: str | None,
        limit: int,
    ) -> Page[Hold]:
        """A ledger's holds, newest first."""

    def create_alert_rule(
        self, new: NewAlertRule, max_rules: int, idem: Idempotency | None = None
    ) -> AlertRule:
        """Add a threshold rule (at most ``max_rules`` per account); it starts low when the
        amount is already below it."""

    def list_alert_rules(self, account_id: str) -> list[AlertRule]: ...

    def delete_alert_rule(self, rule_id: str, idem: Idempotency | None = None) -> AlertRule:
        """Raises ``NotFound`` (a replay answers the rule it stopped)."""

    def record_recharge_failure(
        self, rule_id: str, reason: str | None, idem: Idempotency | None = None
    ) -> AlertRule:
        """A failed top-up: ask again while low, or disable at ``max_failures``."""

    def list_events(self, account_id: str | None, cursor: str | None, limit: int) -> Page[Event]:
        """Outbox events, newest first."""

    def create_webhook(
        self, new: NewWebhook, max_webhooks: int, idem: Idempotency | None = None
    ) -> tuple[Webhook, str]:
        """A subscription, unless ``max_webhooks`` are live (counted atomically), and the
        secret it signs with (a replay's: the one in force now)."""

    def list_webhooks(self) -> list[Webhook]: ...

    def rotate_webhook_secret(
        self, webhook_id: str, secret: str, idem: Idempotency | None = None
    ) -> tuple[Webhook, str]:
        """Give a subscription a new signing secret; raises ``NotFound``. The secret in
        force is returned with it (a replay's: the one in force now)."""

    def delete_webhook(self, webhook_id: str, idem: Idempotency | None = None) -> Webhook:
        """Stop a subscription and dead-letter its pending deliveries."""

    def take_deliveries_due(self) -> bool:
        """Whether a write on this thread made webhook deliveries due since the last call
        (asked after the write, to wake the process's deliverer)."""
        ...

    def delivery_listener(self) -> DeliveryListener | None:
        """What wakes this process when another makes deliveries due (PostgreSQL's
        ``LISTEN``), or None where the engine has no such signal."""
        ...

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
        """Lease up to ``limit`` due deliveries for one attempt each (counted at once),
        at most ``per_webhook`` in flight per subscription."""

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
        """Record attempt ``attempt``: delivered, retry at ``retry_at``, or dead (None);
        False if the delivery moved on since its claim."""

    def redeliver(self, delivery_id: str, idem: Idempotency | None = None) -> Delivery:
        """Queue a delivery again, with a fresh set of attempts."""

    def list_deliveries(
        self, status: str | None, webhook_id: str | None, cursor: str | None, limit: int
    ) -> Page[Delivery]:
        """Deliveries, newest first."""

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
        """The ledger over ``[start, end)``: opening, totals by kind, a page of entries."""

    def outbox_stats(self) -> OutboxStats:
        """How many deliveries are pending, and since when the oldest waits."""

    def ledger_balances(self, limit: int) -> list[LedgerBalance]:
        """The first ``limit`` ledgers (by account, then mode) with their balances."""

    def verify(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Recompute every ledger from its entries; return the problems found.

        Streams in bounded memory and short reads (:mod:`birdbalance.storage.verify`);
        ``progress`` is called after each batch with (accounts done, accounts in all).
        """

    def close(self) -> None: ...


def open_store(settings: Settings) -> Store:
    """The store for ``settings.database_url``; connects lazily.

    Reads (or, on first use, makes) the key secret: see :mod:`birdbalance.key_secret`.
    """
    from birdbalance.key_secret import key_hasher

    url = settings.database_url
    store: SQLStore
    if url.startswith("sqlite:"):
        from birdbalance.storage.sqlite import SQLiteStore, path_from_url

        store = SQLiteStore(
            path_from_url(url),
            synchronous=settings.sqlite_synchronous,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )
    elif url.startswith(("postgresql:", "postgres:")):
        from birdbalance.storage.postgres import PostgresStore

        store = PostgresStore(
            url,
            pool_size=settings.database_pool_size,
            pool_timeout_s=settings.database_timeout_s,
            connect_timeout_s=settings.database_timeout_s,
            statement_timeout_ms=round(settings.database_timeout_s * 1000),
        )
    else:
        raise SettingsError(f"unsupported database URL scheme in {url.split(':', 1)[0]!r}")
    store.key_hasher = key_hasher(settings)
    return store
