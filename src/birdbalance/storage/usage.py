"""Usage broken down by a metadata key: one ledger's charges and refunds over a range,
grouped by the value each entry's metadata gives that key."""

from __future__ import annotations

from typing import ClassVar, Final

from birdbalance.ledger import Mode
from birdbalance.records import UsageBreakdown, UsageGroup

from .moves import LedgerMoves

#: Most groups a breakdown returns (the largest usage first); more are cut off.
MAX_USAGE_GROUPS: Final = 1000


class UsageStore(LedgerMoves):
    """Usage by a metadata key, read on the range index ``entries_at``."""

    #: The value ``metadata`` gives a key (one parameter: the key), per engine. SQLite's
    #: by ``json_each``, so that any key matches exactly (a JSON path would read quotes,
    #: dots and brackets in it as syntax).
    _METADATA_VALUE_SQL: ClassVar[str] = (
        "(SELECT j.value FROM json_each(entries.metadata) j WHERE j.key = ?)"
    )

    def usage_by(
        self, account_id: str, mode: Mode, key: str, start: str, end: str
    ) -> UsageBreakdown:
        """Usage (charges less refunds) over ``[start, end)``, by each entry's
        ``metadata[key]`` (None: entries without it), largest first."""
        with self._snapshot() as conn:
            account = self._account(conn, account_id)
            # A shared sub-account's entries are the ones attributed to it.
            column = "account_id" if account.funding_id is None else "attributed_to"
            rows = self._execute(
                conn,
                f"SELECT {self._METADATA_VALUE_SQL} AS value, -SUM(amount_minor), COUNT(*)"  # noqa: S608 -- constants only
                f" FROM entries WHERE {column} = ? AND mode = ? AND created_at >= ?"
                " AND created_at < ? AND kind IN ('charge', 'refund')"
                " GROUP BY value ORDER BY 2 DESC, 1 LIMIT ?",
                (key, account_id, mode.value, start, end, MAX_USAGE_GROUPS + 1),
            ).fetchall()
        groups = [
            UsageGroup(None if r[0] is None else str(r[0]), int(r[1]), int(r[2]))
            for r in rows[:MAX_USAGE_GROUPS]
        ]
        return UsageBreakdown(account, groups, len(rows) > MAX_USAGE_GROUPS)
