"""The ``birdbalance`` command.

Configured by ``BIRDBALANCE_DATABASE_URL`` (default: a SQLite file in the user's data
directory) and ``BIRDBALANCE_ADMIN_TOKEN``; every flag also reads a ``BIRDBALANCE_*``
variable. Management commands work on the database directly, through the same service
layer as the admin API, so they need no running server. Output is a table by default,
``--output json`` (or ``--json``) or ``--output csv``; errors go to stderr with a
non-zero exit status.

One module per area: :mod:`.operations` (serve, migrate, verify, backup, restore),
:mod:`.accounts` (accounts, keys, tokens, audit), :mod:`.ledger` (entries, history,
statements, holds), :mod:`.alerting` (alerts, events, webhooks, deliveries),
:mod:`.transfers` (transfer, transfers), :mod:`.imports` (import), :mod:`.remote`
(balance, check, watch) and :mod:`.completion`; :mod:`.base` holds the plumbing and
:mod:`.output` the one output layer.
"""

from birdbalance.cli import (  # noqa: F401 -- each area registers its commands on main
    accounts,
    alerting,
    completion,
    imports,
    ledger,
    operations,
    remote,
    transfers,
)
from birdbalance.cli.root import main

__all__ = ["main"]
