"""The ledger in SQL: one store made of its concerns, shared by both engines.

Each engine (``sqlite.py``, ``postgres.py``) subclasses :class:`SQLStore` and supplies
only what differs between engines (see :mod:`.base`). The concerns, lowest first:

- :mod:`.schema`: migrations;
- :mod:`.base`: engine hooks, idempotency records, reading an account;
- :mod:`.ledgers`: a ledger as a write sees it, and the rows it is written as (no I/O);
- :mod:`.crossings`: what a move raises, in its own transaction (events, recharges);
- :mod:`.moves`: **the one place a balance changes** (entries, one or a group commit);
- above it, side by side: :mod:`.accounts`, :mod:`.credentials` (keys, tokens, the
  ``GET /balance`` lookup), :mod:`.audit`, :mod:`.history` (entries, totals, statements),
  :mod:`.holds`, :mod:`.transfers`, :mod:`.usage`, :mod:`.alert_rules`, :mod:`.deliveries` (webhooks
  and the outbox), :mod:`.verify`, :mod:`.subtrees` (what confines a scoped token);
- :mod:`.bulk`: many entries and hold operations in one transaction, each as its single
  write would post it.
"""

from __future__ import annotations

from .accounts import AccountStore
from .alert_rules import AlertRuleStore
from .audit import AuditStore
from .bulk import BulkStore
from .credentials import CredentialStore
from .deliveries import DeliveryStore
from .history import HistoryStore
from .subtrees import SubtreeStore
from .transfers import TransferStore
from .usage import UsageStore
from .verify import VerifyStore


class SQLStore(
    AccountStore,
    CredentialStore,
    AuditStore,
    HistoryStore,
    TransferStore,
    UsageStore,
    BulkStore,
    AlertRuleStore,
    DeliveryStore,
    VerifyStore,
    SubtreeStore,
):
    """:class:`birdbalance.storage.Store` in SQL; engines subclass it.

    Subclasses provide :meth:`_read`, :meth:`_snapshot`, :meth:`_write`, :meth:`_execute`,
    :meth:`_lock_key`, :meth:`schema_version`, :meth:`migrate` and :meth:`close`.
    """
