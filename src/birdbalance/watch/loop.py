"""The watcher's loop: read the balance, judge it, remember, deliver; until stopped.

A round is one reading and one delivery round. It starts every ``interval_s``; its
deliveries stop starting after ``interval_s`` (the budget), so a slow channel delays
the next reading by at most one send. Stopping (``stop`` set, as SIGTERM does) ends
the loop within one send's deadline: a reading in flight ends within ``timeout_s``,
a command is killed at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from birdbalance.client import Balance
from birdbalance.errors import ClientError, WatchError
from birdbalance.watch.channels import Channel, deliver
from birdbalance.watch.readings import Rule, observe
from birdbalance.watch.state import State, load_state, lock_state, save_state


@dataclass(frozen=True, slots=True)
class Watch:
    """What to watch for and where to send it."""

    rules: Sequence[Rule]
    channels: Sequence[Channel]
    #: Added to each event's data (the endpoint, the key's last characters).
    source: dict[str, str]
    state_path: Path
    interval_s: float = 60.0
    #: Bounds a reading, and how long to wait for another watcher's lock.
    timeout_s: float = 10.0


def run(
    watch: Watch,
    read: Callable[[], Balance],
    *,
    once: bool,
    stop: threading.Event,
    emit: Callable[[str], None],
    log: Callable[[str], None],
) -> bool:
    """Watch until ``stop`` is set (or one round if ``once``); whether the last reading
    could be judged. Raises :class:`WatchError` for an untrusted or damaged state file,
    or another watcher holding it."""
    with lock_state(watch.state_path, wait_s=watch.timeout_s):
        state = load_state(watch.state_path)
        judged = True
        while not stop.is_set():
            started = time.monotonic()
            judged = _poll(watch, state, read, emit, log)
            deliver(state, watch.channels, _saver(watch.state_path), log,
                    budget_s=watch.interval_s, stop=stop)  # fmt: skip
            if once:
                break
            stop.wait(max(0.0, started + watch.interval_s - time.monotonic()))
    return judged


def _saver(path: Path) -> Callable[[State], None]:
    def save(state: State) -> None:
        save_state(path, state)

    return save


def _poll(
    watch: Watch,
    state: State,
    read: Callable[[], Balance],
    emit: Callable[[str], None],
    log: Callable[[str], None],
) -> bool:
    try:
        balance = read()
    except ClientError as exc:
        log(f"could not read the balance: {type(exc).__name__}: {exc}")
        return False
    names = [channel.name for channel in watch.channels]
    try:
        events = observe(state, balance, watch.rules, names, watch.source, datetime.now(UTC))
    except WatchError as exc:  # one odd reading: say so, keep the last good one, go on
        log(str(exc))
        return False
    save_state(watch.state_path, state)  # before sending: a crash now loses nothing
    for event in events:
        emit(json.dumps(event, separators=(",", ":")))
    return True
