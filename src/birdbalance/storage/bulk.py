"""Bulk posting: up to :data:`MAX_BULK_OPERATIONS` ledger operations in one transaction,
each with its own idempotency key and its own result, in order.

Each operation is judged exactly as its single-write twin would be (the same code runs
it, in the same transaction as the others), on the ledgers as the operations before it
left them. Operations in a linked group succeed or fail together: the group runs inside a
savepoint, rolled back whole if any of its operations is refused. A run of unlinked
entries (the common case: usage records) is posted as group commits of
:data:`MAX_WRITE_BATCH` (one statement per batch, not per entry).

Every key and every ledger the request names is locked before anything is written, each
set in one global order (keys, then ledgers, as every write does), so bulk requests on
several nodes cannot deadlock with each other or with single writes.

The whole request's own ``Idempotency-Key`` stores its answer, compressed, in the same
transaction: a replay answers the same bytes. A dry run does everything, renders the
answer, and rolls the transaction back.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Final

from birdbalance.errors import IdempotencyConflict, LinkedOperationFailed, ServiceError
from birdbalance.ids import utc_timestamp
from birdbalance.ledger import Mode
from birdbalance.records import (
    BulkLedger,
    BulkOp,
    BulkOutcome,
    HoldResult,
    Idempotency,
    NewCapture,
    NewEntry,
    NewHold,
    NewVoid,
    PostedEntry,
)

from .base import Connection, LedgerKey
from .holds import HoldStore
from .ledgers import MAX_WRITE_BATCH
from .moves import EntryBatch

#: Operations one bulk request carries at most.
MAX_BULK_OPERATIONS: Final = 1000
#: Prefixes a bulk request's own key in the key locks (its keys have their own table).
_BULK_LOCK: Final = "bulk:"

#: A group of operations that succeed or fail together (an unlinked operation is a group
#: of one); an item already refused while it was read is its error.
BulkGroup = Sequence[BulkOp | ServiceError]
Result = PostedEntry | HoldResult | ServiceError
Render = Callable[[BulkOutcome], bytes]


class BulkStore(HoldStore):
    """Bulk posting over the single writes' own code."""

    def post_bulk(
        self,
        groups: Sequence[BulkGroup],
        idem: Idempotency | None,
        render: Render,
        *,
        dry_run: bool,
    ) -> tuple[bytes, bool]:
        """Post ``groups`` in order, in one transaction; the answer ``render`` made of the
        outcome, and whether it is a replay of an earlier request's stored answer.

        A dry run writes nothing (and needs no ``idem``); otherwise the answer is stored
        under ``idem`` with the writes.
        """
        count = sum(len(group) for group in groups)
        assert 1 <= count <= MAX_BULK_OPERATIONS and all(groups)
        assert dry_run or idem is not None
        now = utc_timestamp()
        with self._write(rollback=dry_run) as conn:
            if idem is not None and not dry_run:
                self._lock_key(conn, _BULK_LOCK + idem.key)
                stored = self._execute(
                    conn,
                    "SELECT fingerprint, answer FROM bulk_requests WHERE key = ?",
                    (idem.key,),
                ).fetchone()
                if stored is not None:
                    if stored[0] != idem.fingerprint:
                        raise IdempotencyConflict()
                    return zlib.decompress(bytes(stored[1])), True
            named = self._lock_named(conn, groups)
            results = _BulkRun(self, conn, now).post(groups)
            ledgers = self._ledgers_after(conn, named)
            answer = render(BulkOutcome(results, ledgers))
            if not dry_run:
                assert idem is not None
                self._execute(
                    conn,
                    "INSERT INTO bulk_requests (key, fingerprint, answer, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (idem.key, idem.fingerprint, zlib.compress(answer, 1), now),
                )
            return answer, False

    def _lock_named(self, conn: Connection, groups: Sequence[BulkGroup]) -> list[LedgerKey]:
        """Lock every key, then every existing ledger, the request names (each set in its
        global order); the ledgers, in that order."""
        ops = [item for group in groups for item in group if not isinstance(item, ServiceError)]
        self._lock_keys(conn, [idem.key for _, idem in ops])
        named: set[LedgerKey] = set()
        holds: list[str] = []
        # A shared sub-account's entries land on its parent's ledger: lock that one.
        owners: dict[str, str] = {}
        entry_accounts = sorted({op.account_id for op, _ in ops if isinstance(op, NewEntry)})
        for start in range(0, len(entry_accounts), MAX_WRITE_BATCH):
            owners.update(self._funding_of(conn, entry_accounts[start : start + MAX_WRITE_BATCH]))
        for op, _ in ops:
            if isinstance(op, NewEntry):
                named.add((owners.get(op.account_id, op.account_id), op.mode))
            elif isinstance(op, NewHold):
                named.add((op.account_id, op.mode))
            else:
                holds.append(op.hold_id)
        for start in range(0, len(holds), MAX_WRITE_BATCH):
            chunk = sorted(set(holds[start : start + MAX_WRITE_BATCH]))
            marks = ", ".join(["?"] * len(chunk))
            rows = self._execute(
                conn,
                f"SELECT account_id, mode FROM holds WHERE id IN ({marks})",  # noqa: S608 -- placeholders only
                chunk,
            ).fetchall()
            named.update((row[0], Mode(row[1])) for row in rows)
        ordered = sorted(named)
        if self.for_update:  # engines with row locks; SQLite's write lock covers them all
            for start in range(0, len(ordered), MAX_WRITE_BATCH):
                self._read_ledgers(conn, ordered[start : start + MAX_WRITE_BATCH])
        return ordered

    def _ledgers_after(self, conn: Connection, named: list[LedgerKey]) -> list[BulkLedger]:
        found: list[BulkLedger] = []
        for start in range(0, len(named), MAX_WRITE_BATCH):
            ledgers = self._read_ledgers(conn, named[start : start + MAX_WRITE_BATCH])
            found.extend(
                BulkLedger(
                    ledger.account_id,
                    ledger.mode,
                    ledger.payment,
                    ledger.asset,
                    ledger.scale,
                    ledger.balance_minor,
                    ledger.held_minor,
                )
                for ledger in ledgers.values()
            )
        return found


class _BulkRun:
    """One bulk request's operations, in order, inside its transaction."""

    def __init__(self, store: BulkStore, conn: Connection, now: str) -> None:
        self.store = store
        self.conn = conn
        self.now = now
        self.results: list[Result] = []
        #: Unlinked entries waiting to be posted together.
        self.entries: list[tuple[NewEntry, Idempotency]] = []

    def post(self, groups: Sequence[BulkGroup]) -> list[Result]:
        for group in groups:
            first = group[0] if len(group) == 1 else None
            if isinstance(first, tuple) and isinstance(first[0], NewEntry):
                self.entries.append((first[0], first[1]))
                if len(self.entries) == MAX_WRITE_BATCH:
                    self._post_entries()
                continue
            self._post_entries()
            self.results.extend(self._group(group, len(self.results)))
        self._post_entries()
        return self.results

    def _post_entries(self) -> None:
        if self.entries:
            self.results.extend(EntryBatch(self.store, self.conn, self.now).post(self.entries))
            self.entries = []

    def _group(self, group: BulkGroup, first_index: int) -> list[Result]:
        """A linked group (or a lone hold, capture or void) inside a savepoint."""
        failed = next((n for n, item in enumerate(group) if isinstance(item, ServiceError)), None)
        results: list[Result] = []
        if failed is None:
            execute = self.store._execute
            execute(self.conn, "SAVEPOINT bulk_group")
            for n, item in enumerate(group):
                assert not isinstance(item, ServiceError)
                try:
                    results.append(self._one(*item))
                except ServiceError as exc:
                    results.append(exc)
                    failed = n
                    execute(self.conn, "ROLLBACK TO SAVEPOINT bulk_group")
                    break
            execute(self.conn, "RELEASE SAVEPOINT bulk_group")
            if failed is None:
                return results
        refused = group[failed]
        return [
            (refused if isinstance(refused, ServiceError) else results[failed])
            if n == failed
            else LinkedOperationFailed(
                f"not applied: operation {first_index + failed} of its linked group failed",
                "linked",
            )
            for n in range(len(group))
        ]

    def _one(self, op: NewEntry | NewHold | NewCapture | NewVoid, idem: Idempotency) -> Result:
        store, conn, now = self.store, self.conn, self.now
        if isinstance(op, NewEntry):
            [posted] = EntryBatch(store, conn, now).post([(op, idem)])
            if isinstance(posted, ServiceError):
                raise posted
            return posted
        if isinstance(op, NewHold):
            return store._create_hold_in(conn, op, idem, now)
        if isinstance(op, NewCapture):
            return store._capture_in(conn, op, idem, now)
        return store._void_in(conn, op, idem, now)
