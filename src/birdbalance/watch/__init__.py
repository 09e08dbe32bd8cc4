"""``birdbalance watch``: alerts for any MessageBird-compatible balance, by polling.

The server raises its events inside the write that crosses a threshold. An endpoint we
do not run (MessageBird itself, or a birdbalance we only hold a key for) can only be
polled, so the watcher applies the same rules (:func:`birdbalance.alerts.crossings`) to
each balance it reads, and sends the same events (``balance.low``,
``balance.recovered``, ``balance.depleted``) to its channels: a signed webhook, email,
or a command that gets the event on stdin.

- :mod:`~birdbalance.watch.readings`: from readings to events (pure);
- :mod:`~birdbalance.watch.state`: the state file (strict, bounded, atomic) and its lock;
- :mod:`~birdbalance.watch.channels`: webhook, command and email, each send with a
  deadline, and the delivery round with its budget;
- :mod:`~birdbalance.watch.loop`: the polling loop.
"""

from birdbalance.errors import WatchError
from birdbalance.watch.amounts import SCALE, to_minor
from birdbalance.watch.channels import (
    COMMAND_TIMEOUT_S,
    MAX_COMMAND_OUTPUT_BYTES,
    Channel,
    CommandChannel,
    EmailChannel,
    WebhookChannel,
    child_env,
    deliver,
)
from birdbalance.watch.loop import Watch, run
from birdbalance.watch.readings import MAX_RULES, Rule, observe, reading_problem
from birdbalance.watch.state import (
    MAX_ATTEMPTS,
    MAX_OUTBOX,
    MAX_STATE_BYTES,
    Pending,
    State,
    load_state,
    lock_state,
    save_state,
)

__all__ = [
    "COMMAND_TIMEOUT_S",
    "MAX_ATTEMPTS",
    "MAX_COMMAND_OUTPUT_BYTES",
    "MAX_OUTBOX",
    "MAX_RULES",
    "MAX_STATE_BYTES",
    "SCALE",
    "Channel",
    "CommandChannel",
    "EmailChannel",
    "Pending",
    "Rule",
    "State",
    "Watch",
    "WatchError",
    "WebhookChannel",
    "child_env",
    "deliver",
    "load_state",
    "lock_state",
    "observe",
    "reading_problem",
    "run",
    "save_state",
    "to_minor",
]
