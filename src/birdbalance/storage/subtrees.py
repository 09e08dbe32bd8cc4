"""Who owns what, for tokens confined to one account's subtree.

An account's ancestry (itself, its parent, its grandparent: accounts nest three levels at
most) never changes once it exists, so a process remembers it; a resource's account (a
key's, a hold's, a transfer's two) is read where it is stored.
"""

from __future__ import annotations

import threading
from typing import Final

from .moves import LedgerMoves

#: Most accounts whose ancestry a process remembers (then it forgets them all).
MAX_REMEMBERED_ANCESTRIES: Final = 100_000

#: The accounts a resource belongs to, by the kind its id names (one parameter: the id).
#: A webhook for every account belongs to none; a delivery is its event's account's.
_OWNERS_SQL: Final = {
    "account": "SELECT id FROM accounts WHERE id = ?",
    "key": "SELECT account_id FROM api_keys WHERE id = ?",
    "hold": "SELECT account_id FROM holds WHERE id = ?",
    "alert": "SELECT account_id FROM alert_rules WHERE id = ?",
    "webhook": "SELECT account_id FROM webhooks WHERE id = ? AND account_id IS NOT NULL",
    "delivery": "SELECT e.account_id FROM deliveries d JOIN events e ON e.id = d.event_id"
    " WHERE d.id = ?",
    "transfer": "SELECT from_account FROM transfers WHERE id = ?"
    " UNION ALL SELECT to_account FROM transfers WHERE id = ?",
}

#: The kinds :meth:`SubtreeStore.owners_of` knows.
OWNED_KINDS: Final = frozenset(_OWNERS_SQL)


class SubtreeStore(LedgerMoves):
    """Ancestries and owners: what confines a scoped token."""

    def _ancestries(self) -> dict[str, tuple[str, ...]]:
        known: dict[str, tuple[str, ...]] | None = getattr(self, "_known_ancestries", None)
        if known is None:
            known = {}
            self._known_ancestries = known
            self._ancestry_lock = threading.Lock()
        return known

    def ancestry(self, account_id: str) -> tuple[str, ...] | None:
        """The account and its ancestors, nearest first; None if there is no such account."""
        known = self._ancestries()
        with self._ancestry_lock:
            found = known.get(account_id)
        if found is not None:
            return found
        with self._read() as conn:
            row = self._execute(
                conn,
                "SELECT a.id, a.parent_id, p.parent_id FROM accounts a"
                " LEFT JOIN accounts p ON p.id = a.parent_id WHERE a.id = ?",
                (account_id,),
            ).fetchone()
        if row is None:
            return None
        chain = tuple(str(v) for v in row if v is not None)
        with self._ancestry_lock:
            if len(known) >= MAX_REMEMBERED_ANCESTRIES:
                known.clear()
            known[account_id] = chain
        return chain

    def owners_of(self, kind: str, resource_id: str) -> list[str]:
        """The accounts a resource of ``kind`` belongs to (none: it does not exist, or it
        belongs to no account)."""
        sql = _OWNERS_SQL[kind]
        args = (resource_id,) * sql.count("?")
        with self._read() as conn:
            return [str(r[0]) for r in self._execute(conn, sql, args).fetchall()]

    def subtree_ids(self, root: str, limit: int) -> list[str]:
        """Up to ``limit`` accounts of ``root``'s subtree (itself first, then by id)."""
        with self._read() as conn:
            rows = self._execute(
                conn,
                "SELECT id FROM accounts WHERE parent_id = ? OR parent_id IN"
                " (SELECT id FROM accounts WHERE parent_id = ?) ORDER BY id LIMIT ?",
                (root, root, limit),
            ).fetchall()
        return [root, *(str(r[0]) for r in rows)]
