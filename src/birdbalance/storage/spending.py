"""Shared sub-accounts in storage: their parent's ledger and their usage counters.

A shared sub-account's entries are written on its parent's ledger (``funding_id``),
attributed to it, under that ledger's lock; the same transaction moves its ``spending``
counters (:mod:`birdbalance.spending` judges them). ``funding_id`` never changes once an
account exists, so it is read before any lock is taken (and remembered), and the
ledgers a write locks are always the ones its entries land on: the lock order holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from birdbalance.alerts import RuleState
from birdbalance.errors import InvalidParameter
from birdbalance.ids import utc_timestamp
from birdbalance.ledger import EntryKind, Mode
from birdbalance.records import Account, SharedSpend
from birdbalance.spending import SpendLimit, SpendPeriod, period_key, period_keys, stored_limit

from .base import ACCOUNT_SQL, Connection, account_from_row
from .crossings import CrossingWrites

#: Most account ids whose funding ledger a process remembers (then it forgets them all).
MAX_REMEMBERED_FUNDING: Final = 100_000


def placeholders(count: int) -> str:
    assert count >= 1
    return ", ".join(["?"] * count)


class FundingIds:
    """Which accounts spend another's ledger: account id -> funding account id (or itself).

    Immutable facts, so a process may remember them; bounded, and thread-safe.
    """

    def __init__(self) -> None:
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def resolve(
        self, ids: Iterable[str], read: Callable[[list[str]], Sequence[tuple[str, str | None]]]
    ) -> dict[str, str]:
        """The ledger owner of each id that exists (``read`` fetches unknown ids' rows)."""
        wanted = set(ids)
        with self._lock:
            found = {i: self._known[i] for i in wanted if i in self._known}
        missing = sorted(wanted - found.keys())
        if missing:
            rows = read(missing)
            fresh = {str(r[0]): str(r[1] or r[0]) for r in rows}
            found.update(fresh)
            with self._lock:
                if len(self._known) + len(fresh) > MAX_REMEMBERED_FUNDING:
                    self._known.clear()
                self._known.update(fresh)
        return found


@dataclass
class Attributed:
    """A shared sub-account's state inside one write: its limit, its counters, and its
    alert rules (by mode)."""

    limit: SpendLimit | None
    counters: dict[tuple[Mode, str], int]
    rules: dict[Mode, list[RuleState]]


class SpendingStore(CrossingWrites):
    """The reads and writes of shared sub-accounts' state."""

    def _account(self, conn: Connection, account_id: str) -> Account:
        return self._with_shared(conn, [super()._account(conn, account_id)], utc_timestamp())[0]

    def _funding_cache(self) -> FundingIds:
        cache: FundingIds | None = getattr(self, "_funding", None)
        if cache is None:
            cache = FundingIds()
            self._funding = cache
        return cache

    def _funding_of(self, conn: Any, ids: Iterable[str]) -> dict[str, str]:
        """Each existing account's ledger owner: itself, or a shared one's parent."""

        def read(missing: list[str]) -> Sequence[tuple[str, str | None]]:
            return [
                (str(r[0]), r[1])
                for r in self._execute(
                    conn,
                    "SELECT id, funding_id FROM accounts"  # noqa: S608 -- placeholders only
                    f" WHERE id IN ({placeholders(len(missing))})",
                    missing,
                ).fetchall()
            ]

        return self._funding_cache().resolve(ids, read)

    def shared_balances(self, limit: int) -> list[Account]:
        """The first ``limit`` shared sub-accounts (by id), each with its spending now."""
        assert limit >= 0
        with self._read() as conn:
            rows = self._execute(
                conn,
                ACCOUNT_SQL + " WHERE a.funding_id IS NOT NULL ORDER BY a.id LIMIT ?",
                (limit,),
            ).fetchall()
            return self._with_shared(conn, [account_from_row(r) for r in rows], utc_timestamp())

    def _refuse_shared(self, conn: Any, account_id: str, what: str, parameter: str) -> None:
        """422 if ``account_id`` is a shared sub-account: it has no ledger of its own to
        hold, or move, money on."""
        owner = self._funding_of(conn, [account_id]).get(account_id, account_id)
        if owner != account_id:
            raise InvalidParameter(
                f"{account_id} spends the balance of {owner} (a shared sub-account), so it"
                f" has no balance of its own for {what}: use {owner}",
                parameter,
            )

    def _attributed_state(self, conn: Any, subs: Sequence[str], now: str) -> dict[str, Attributed]:
        """The limits and current counters of shared sub-accounts (read under the lock of
        their parents' ledgers, which guards them)."""
        marks = placeholders(len(subs))
        limits = {
            str(r[0]): stored_limit(r[1], r[2])
            for r in self._execute(
                conn,
                "SELECT id, spend_limit_minor, spend_limit_period FROM accounts"  # noqa: S608 -- placeholders only
                f" WHERE id IN ({marks})",
                list(subs),
            ).fetchall()
        }
        keys = period_keys(now)
        rules = self._alert_rules(conn, [(sub, mode) for sub in subs for mode in Mode])
        state = {
            sub: Attributed(limits.get(sub), {}, {m: rules.get((sub, m), []) for m in Mode})
            for sub in subs
        }
        for r in self._execute(
            conn,
            "SELECT account_id, mode, period, spent_minor FROM spending"  # noqa: S608 -- placeholders only
            f" WHERE account_id IN ({marks}) AND period IN (?, ?, ?)",
            [*subs, *keys],
        ).fetchall():
            state[str(r[0])].counters[(Mode(r[1]), str(r[2]))] = int(r[3])
        return state

    def _write_counters(self, conn: Any, rows: Sequence[tuple[str, str, str, int]]) -> None:
        """Set counters (account, mode, period, spent) to the values a write reached."""
        if rows:
            self._execute(
                conn,
                "INSERT INTO spending (account_id, mode, period, spent_minor) VALUES "  # noqa: S608 -- placeholders only
                + ", ".join(["(?, ?, ?, ?)"] * len(rows))
                + " ON CONFLICT (account_id, mode, period) DO UPDATE"
                " SET spent_minor = excluded.spent_minor",
                [v for row in rows for v in row],
            )

    def _with_shared(self, conn: Any, accounts: list[Account], now: str) -> list[Account]:
        """``accounts``, each shared one with its spending now (two reads for them all)."""
        shared = [a for a in accounts if a.funding_id is not None]
        if not shared:
            return accounts
        parents = sorted({a.funding_id for a in shared if a.funding_id is not None})
        available = {
            (str(r[0]), Mode(r[1])): int(r[2]) - int(r[3])
            for r in self._execute(
                conn,
                "SELECT account_id, mode, balance_minor, held_minor FROM balances"  # noqa: S608 -- placeholders only
                f" WHERE account_id IN ({placeholders(len(parents))})",
                parents,
            ).fetchall()
        }
        ids = [a.id for a in shared]
        spent = {
            (str(r[0]), Mode(r[1]), str(r[2])): int(r[3])
            for r in self._execute(
                conn,
                "SELECT account_id, mode, period, spent_minor FROM spending"  # noqa: S608 -- placeholders only
                f" WHERE account_id IN ({placeholders(len(ids))}) AND period IN (?, ?, ?)",
                [*ids, *period_keys(now)],
            ).fetchall()
        }
        done = {}
        for account in shared:
            assert account.funding_id is not None
            limit = account.spend_limit
            key = period_key(limit.period if limit else SpendPeriod.ALL, now)
            done[account.id] = replace(
                account,
                shared={
                    mode: SharedSpend(
                        available.get((account.funding_id, mode), 0),
                        spent.get((account.id, mode, key), 0),
                        limit,
                    )
                    for mode in Mode
                },
            )
        return [done.get(a.id, a) for a in accounts]


def check_attributable(kind: EntryKind, account_id: str, parent_id: str) -> None:
    """Refuse what a shared sub-account cannot be given: only charges and refunds of its
    own charges move its parent's money on its behalf."""
    if kind not in (EntryKind.CHARGE, EntryKind.REFUND):
        raise InvalidParameter(
            f"{account_id} spends the balance of {parent_id} (a shared sub-account): it takes"
            f" charges and refunds only; {kind.value}s go to {parent_id}",
            "account",
        )
