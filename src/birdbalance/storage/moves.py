"""The one place a balance changes: ledger writes, one at a time or as a group commit.

Every entry is appended here, under the ledger's write lock, with the balance after it,
the held amount and the day's turnover checked by the pure rules of
:mod:`birdbalance.ledger` in the same transaction. Concurrency, engine by engine:

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

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from birdbalance.alerts import RuleState
from birdbalance.errors import IdempotencyConflict, InvalidParameter, NotFound, ServiceError
from birdbalance.ids import new_id, utc_timestamp
from birdbalance.ledger import EntryKind, Mode, RefundTarget, next_balance
from birdbalance.records import Entry, Idempotency, NewEntry, PostedEntry
from birdbalance.spending import SpendPeriod, period_key, spend, spendable

from .base import INSERT_IDEMPOTENCY_SQL, Connection, LedgerKey
from .crossings import rules_from
from .ledgers import (
    ENTRY_SQL,
    INSERT_ENTRY_SQL,
    MAX_WRITE_BATCH,
    MOVE_LEDGER_SQL,
    LockedLedger,
    entry_from_row,
    entry_row,
    ledger_after,
    ledger_pairs,
    ledgers_from,
    move_row,
    values_rows,
)
from .spending import Attributed, SpendingStore, check_attributable


class EntryBatch:
    """One group commit: the entries of :meth:`SQLStore.append_entries`, in one transaction.

    Every query is per batch, not per entry: the keys are locked and looked up at once,
    the ledgers are locked at once (in one global order, so batches on several nodes
    cannot deadlock), each ledger's row is moved once, and the entries and keys are
    inserted together. The rules of :mod:`birdbalance.ledger` and :mod:`birdbalance.alerts`
    run per entry, in order, on the ledgers as the batch has moved them so far.
    """

    def __init__(self, store: LedgerMoves, conn: Connection, now: str) -> None:
        self.store = store
        self.conn = conn
        self.now = now
        self.entry_rows: list[tuple[Any, ...]] = []
        self.key_rows: list[tuple[Any, ...]] = []
        #: Shared sub-accounts' limits and counters, as this batch has moved them.
        self.attributed: dict[str, Attributed] = {}
        self.moved_counters: set[tuple[str, Mode, str]] = set()

    @staticmethod
    def _on_ledger(new: NewEntry, owners: dict[str, str]) -> NewEntry:
        """``new`` as written: a shared sub-account's on its parent's ledger."""
        owner = owners.get(new.account_id, new.account_id)
        if owner == new.account_id:
            return new
        return replace(new, account_id=owner, attributed_to=new.account_id)

    def _counter_rows(self) -> list[tuple[str, str, str, int]]:
        return [
            (sub, mode.value, period, self.attributed[sub].counters[(mode, period)])
            for sub, mode, period in sorted(self.moved_counters, key=str)
        ]

    def post(
        self, batch: Sequence[tuple[NewEntry, Idempotency]]
    ) -> list[PostedEntry | ServiceError]:
        store, conn = self.store, self.conn
        keys = [idem.key for _, idem in batch]
        # A shared sub-account's entries land on its parent's ledger: the ledgers locked
        # are the ones written (funding ids never change, so this read needs no lock).
        owners = store._funding_of(conn, {new.account_id for new, _ in batch})
        batch = [(self._on_ledger(new, owners), idem) for new, idem in batch]
        wanted = sorted({(new.account_id, new.mode) for new, _ in batch})
        # Four statements sent together where the engine pipelines, run in this order: the
        # keys' locks come before their lookup, the ledgers' locks before their rules.
        store._lock_keys(conn, keys)
        known_read = self._send_known_keys_read(keys)
        ledgers_read = store._send_ledgers_read(conn, wanted)
        rules_read = store._send_alert_rules_read(conn, wanted)
        known = {r[0]: (r[1], r[2], str(r[3])) for r in known_read.fetchall()}
        locked = ledgers_from(ledgers_read.fetchall())
        rules = rules_from(rules_read.fetchall())
        if self._expire_holds(locked):
            rules = store._alert_rules(conn, wanted)  # expiring holds may have moved them
        ledgers = dict(locked)
        subs = sorted({new.attributed_to for new, _ in batch if new.attributed_to})
        if subs:
            self.attributed.update(store._attributed_state(conn, subs, self.now))
        results: list[PostedEntry | ServiceError | str] = []
        for new, idem in batch:
            try:
                results.append(self._post_one(new, idem, known, ledgers, rules))
            except ServiceError as exc:
                results.append(exc)
        self._flush()
        store._write_counters(conn, self._counter_rows())
        moves = [
            move_row(start, ledgers[key]) for key, start in locked.items() if ledgers[key] != start
        ]
        store._move_ledgers(conn, moves)
        # Replays (of earlier batches or of an entry earlier in this one) read their entry.
        return [
            store._posted(conn, store._entry(conn, r), replayed=True) if isinstance(r, str) else r
            for r in results
        ]

    def _post_one(
        self,
        new: NewEntry,
        idem: Idempotency,
        known: dict[str, tuple[str, str, str]],
        ledgers: dict[LedgerKey, LockedLedger],
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
        if new.attributed_to is not None:
            check_attributable(new.kind, new.attributed_to, new.account_id)
        if new.kind is EntryKind.REFUND and new.refund_of is not None:
            self._flush()  # the refunded charge may be earlier in this batch
        target, charged_for = self.store._refund_target(self.conn, new)
        new = self._attribute_refund(new, charged_for)
        after = next_balance(ledger.state, new.kind, new.amount_minor, refund_target=target)
        entry = self.store._next_entry(ledger, new, after, self.now, None)
        moved = ledger_after(ledger, entry, ledger.held_minor)  # may refuse: before any write
        spent = None if entry.attributed_to is None else self._spend(entry)  # may refuse
        self.entry_rows.append(entry_row(entry))
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
        if spent is not None:
            self._shared_crossings(entry, ledger, moved, *spent)
        ledgers[key] = moved
        return PostedEntry(entry, ledger.payment, ledger.asset, ledger.scale, False)

    def _attribute_refund(self, new: NewEntry, charged_for: str | None) -> NewEntry:
        """A refund belongs to whoever its charge was for; posted for a shared sub-account,
        it may refund that sub-account's own charges only."""
        if new.kind is not EntryKind.REFUND or new.attributed_to == charged_for:
            return new
        if new.attributed_to is not None:
            raise NotFound(
                f"no entry {new.refund_of} among the charges of {new.attributed_to}", "charge"
            )
        return replace(new, attributed_to=charged_for)

    def _spend(self, entry: Entry) -> tuple[int, int]:
        """Count an attributed entry in its sub-account's usage, or refuse it past the
        limit (nothing is written until the whole entry is judged); its usage in the
        limit's period before and after."""
        sub = entry.attributed_to
        assert sub is not None
        if sub not in self.attributed:
            self.attributed.update(self.store._attributed_state(self.conn, [sub], self.now))
        state = self.attributed[sub]
        mine = {p: v for (m, p), v in state.counters.items() if m is entry.mode}
        after = spend(mine, entry.kind, entry.amount_minor, entry.created_at, state.limit)
        for period, spent in after.items():
            state.counters[(entry.mode, period)] = spent
            self.moved_counters.add((sub, entry.mode, period))
        limit = state.limit
        key = period_key(limit.period if limit else SpendPeriod.ALL, entry.created_at)
        return mine.get(key, 0), after[key]

    def _shared_crossings(
        self, entry: Entry, ledger: LockedLedger, moved: LockedLedger, before: int, after: int
    ) -> None:
        """A shared sub-account's alert rules watch what it may spend (the smaller of its
        parent's available amount and what its limit leaves), judged at each of its own
        entries, in their transaction."""
        sub = entry.attributed_to
        assert sub is not None
        state = self.attributed[sub]
        rules = state.rules.get(entry.mode)
        if not rules:
            return
        could = spendable(ledger.balance_minor - ledger.held_minor, state.limit, before)
        can = spendable(moved.balance_minor - moved.held_minor, state.limit, after)
        view = replace(ledger, account_id=sub, balance_minor=could, held_minor=0)
        state.rules[entry.mode] = self.store._write_crossings(
            self.conn, view, rules, can, 0, self.now, {"entry": entry.id}
        )

    def _send_known_keys_read(self, keys: list[str]) -> Any:
        marks = ", ".join(["?"] * len(keys))
        return self.store._execute(
            self.conn,
            "SELECT key, fingerprint, resource_type, resource_id FROM idempotency_keys"  # noqa: S608 -- placeholders only
            f" WHERE key IN ({marks})",
            keys,
        )

    def _expire_holds(self, locked: dict[LedgerKey, LockedLedger]) -> int:
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
            self.store._execute(
                self.conn,
                values_rows(INSERT_ENTRY_SQL, len(self.entry_rows)),
                [value for row in self.entry_rows for value in row],
            )
            self.store._execute_many(self.conn, INSERT_IDEMPOTENCY_SQL, self.key_rows)
            self.entry_rows, self.key_rows = [], []


class LedgerMoves(SpendingStore):
    """Appends entries and moves ledgers: the only writer of ``balances``' amounts."""

    def _read_ledger(self, conn: Connection, account_id: str, mode: Mode) -> LockedLedger:
        """Read (and, on engines with row locks, lock) a ledger's row."""
        ledger = self._read_ledgers(conn, [(account_id, mode)]).get((account_id, mode))
        if ledger is None:
            raise NotFound(f"no account {account_id}", "account")
        return ledger

    def _read_ledgers(
        self, conn: Connection, wanted: Iterable[LedgerKey]
    ) -> dict[LedgerKey, LockedLedger]:
        """Read (and lock, in one global order) the wanted ledgers that exist."""
        return ledgers_from(self._send_ledgers_read(conn, wanted).fetchall())

    def _send_ledgers_read(self, conn: Connection, wanted: Iterable[LedgerKey]) -> Any:
        """The cursor of :meth:`_read_ledgers`' query (still unread where pipelined)."""
        ordered = sorted(set(wanted))
        return self._execute(
            conn,
            # A join on a VALUES list, not a row-value IN: SQLite seeks each ledger by its
            # key instead of scanning every ledger.
            f"WITH w(account_id, mode) AS (VALUES {ledger_pairs(len(ordered))})"  # noqa: S608 -- placeholders only
            " SELECT a.id, b.mode, a.payment, a.asset, a.scale, a.credit_limit_minor,"
            " b.balance_minor, b.seq, b.held_minor, b.last_entry_at, b.turnover_day,"
            " b.turnover_in_minor, b.turnover_out_minor"
            " FROM w JOIN balances b ON b.account_id = w.account_id AND b.mode = w.mode"
            " JOIN accounts a ON a.id = b.account_id"
            " ORDER BY b.account_id, b.mode" + self.for_update,
            [v for account_id, mode in ordered for v in (account_id, mode.value)],
        )

    def _lock_ledger(self, conn: Connection, account_id: str, mode: Mode, now: str) -> LockedLedger:
        """Read and lock a ledger, then expire its due holds: the state a write starts from."""
        ledger = self._read_ledger(conn, account_id, mode)
        if ledger.held_minor:
            ledger, _ = self._expire_due(conn, ledger, now)
        return ledger

    def _expire_due(
        self, conn: Connection, ledger: LockedLedger, now: str
    ) -> tuple[LockedLedger, int]:
        """Expire the ledger's holds that are due at ``now``; the ledger after, and how many."""
        amounts = [
            r[0]
            for r in self._execute(
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
        self,
        conn: Connection,
        ledger: LockedLedger,
        held_minor: int,
        now: str,
        cause: dict[str, Any],
    ) -> None:
        moved = self._rowcount(
            conn,
            self._execute(
                conn,
                "UPDATE balances SET held_minor = ? WHERE account_id = ? AND mode = ? AND seq = ?",
                (held_minor, ledger.account_id, ledger.mode.value, ledger.seq),
            ),
        )
        assert moved == 1, "ledger moved under its write lock"
        self._raise_alerts(conn, ledger, ledger.balance_minor, held_minor, now, cause)

    @staticmethod
    def _next_entry(
        ledger: LockedLedger, new: NewEntry, after_minor: int, now: str, hold_id: str | None
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
            attributed_to=new.attributed_to,
        )

    def _move_ledgers(self, conn: Connection, moves: Sequence[tuple[Any, ...]]) -> None:
        """Move several ledgers' rows (:func:`move_row` each), each exactly once."""
        cursors = [self._execute(conn, MOVE_LEDGER_SQL, row) for row in moves]
        assert all(self._rowcount(conn, c) == 1 for c in cursors), "a ledger moved under its lock"

    def _move_ledger(self, conn: Connection, start: LockedLedger, end: LockedLedger) -> None:
        """Move a ledger's row from the state it was locked in to ``end``."""
        moved = self._rowcount(conn, self._execute(conn, MOVE_LEDGER_SQL, move_row(start, end)))
        assert moved == 1, "ledger moved under its write lock"

    def _append(
        self,
        conn: Connection,
        ledger: LockedLedger,
        new: NewEntry,
        after_minor: int,
        now: str,
        *,
        held_after_minor: int,
        hold_id: str | None = None,
    ) -> Entry:
        """Append one entry and move the ledger's row to it (balance, seq, holds, time)."""
        entry = self._next_entry(ledger, new, after_minor, now, hold_id)
        end = ledger_after(ledger, entry, held_after_minor)  # may refuse: before any write
        self._execute(conn, INSERT_ENTRY_SQL, entry_row(entry))
        self._move_ledger(conn, ledger, end)
        self._raise_alerts(conn, ledger, after_minor, held_after_minor, now, {"entry": entry.id})
        return entry

    def append_entry(self, new: NewEntry, idem: Idempotency) -> PostedEntry:
        """Append one entry: :meth:`append_entries` with a batch of one."""
        (result,) = self.append_entries([(new, idem)])
        if isinstance(result, ServiceError):
            raise result
        return result

    def append_entries(
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
            return EntryBatch(self, conn, now).post(batch)

    def _posted(self, conn: Connection, entry: Entry, *, replayed: bool) -> PostedEntry:
        account = self._account(conn, entry.account_id)
        return PostedEntry(entry, account.payment, account.asset, account.scale, replayed)

    def _refund_target(
        self, conn: Connection, new: NewEntry
    ) -> tuple[RefundTarget | None, str | None]:
        """The charge a refund names, and the shared sub-account it was for (if any)."""
        if new.kind is not EntryKind.REFUND:
            if new.refund_of is not None:
                raise InvalidParameter("only a refund names a charge", "charge")
            return None, None
        if new.refund_of is None:
            return None, None
        row = self._execute(
            conn,
            "SELECT kind, amount_minor, attributed_to FROM entries"
            " WHERE id = ? AND account_id = ? AND mode = ?",
            (new.refund_of, new.account_id, new.mode.value),
        ).fetchone()
        if row is None:
            raise NotFound(
                f"no entry {new.refund_of} in this account's {new.mode} ledger", "charge"
            )
        refunded = self._execute(
            conn,
            "SELECT COALESCE(SUM(amount_minor), 0) FROM entries WHERE refund_of = ?",
            (new.refund_of,),
        ).fetchone()[0]
        return RefundTarget(EntryKind(row[0]), row[1], int(refunded)), row[2]

    def _entry(self, conn: Connection, entry_id: str) -> Entry:
        row = self._execute(conn, ENTRY_SQL + " WHERE id = ?", (entry_id,)).fetchone()
        assert row is not None, entry_id
        return entry_from_row(row)
