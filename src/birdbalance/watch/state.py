"""The watcher's memory: its state file, read strictly and written atomically, and its lock.

The file holds the last amount, each rule's ``low`` flag, and an outbox of events not yet
handed to every channel. It is written atomically (temporary file, fsync, rename)
*before* anything is sent, so a restart neither forgets an event nor raises it again.

Whatever is in the outbox gets signed and sent, so the file is trusted only when nobody
else could have written it: it must be a regular file of this user, writable by nobody
else, in a directory others cannot write to (unless sticky, like ``/tmp``). It is read
at most :data:`MAX_STATE_BYTES`, and every field is checked for its type and bounds: a
damaged file is one clear :class:`WatchError`, never a traceback or a wrong event.

Two watchers on one file would both raise the same crossing, so :func:`lock_state`
holds an exclusive lock on ``<file>.lock`` for as long as a watcher runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from birdbalance.alerts import EventType
from birdbalance.errors import WatchError
from birdbalance.watch.amounts import parse_amount

#: Events kept for channels that keep failing; the oldest go first past this.
MAX_OUTBOX: Final = 1000
#: Attempts per event and channel before the watcher gives up on that pair.
MAX_ATTEMPTS: Final = 50
#: Most bytes of a state file read (a full outbox of the largest events is ~1.5 MiB).
MAX_STATE_BYTES: Final = 4 * 1024 * 1024
#: Characters of a failure kept on a queued event.
MAX_ERROR_CHARS: Final = 300
#: Characters of any text field of a queued event.
MAX_FIELD_CHARS: Final = 1000
MAX_RULES_KEPT: Final = 100
STATE_VERSION: Final = 1
CHANNEL_NAMES: Final = frozenset({"webhook", "command", "email"})
_EVENT_ID: Final = re.compile(r"evt_w[0-9a-f]{24}")
_EVENT_TYPES: Final = frozenset(t.value for t in EventType)
_LOCK_POLL_S: Final = 0.1


@dataclass
class Pending:
    """An event some channels still have to receive."""

    event: dict[str, Any]
    channels: list[str]
    attempts: int = 0
    last_error: str | None = None


@dataclass
class State:
    """What the watcher remembers between polls and restarts."""

    amount: str | None = None
    low: dict[str, bool] = field(default_factory=dict)
    outbox: list[Pending] = field(default_factory=list)
    dropped: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "amount": self.amount,
            "low": self.low,
            "outbox": [vars(p) for p in self.outbox],
            "dropped": self.dropped,
        }

    @classmethod
    def from_json(cls, data: Any) -> State:
        """The state ``data`` describes; :class:`WatchError` naming the first bad field."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise WatchError("it is not a birdbalance watch state (version 1)")
        _keys(data, {"version", "amount", "low", "outbox"}, {"dropped"}, "the state")
        amount = data["amount"]
        if amount is not None:
            parse_amount(_text(amount, "amount"))
        low = data["low"]
        if not isinstance(low, dict) or len(low) > MAX_RULES_KEPT:
            raise WatchError(f"'low' must be an object of at most {MAX_RULES_KEPT} flags")
        for rule_id, flag in low.items():
            _text(rule_id, "a rule id")
            if not isinstance(flag, bool):
                raise WatchError(f"low[{rule_id[:40]!r}] must be true or false")
        outbox = data["outbox"]
        if not isinstance(outbox, list) or len(outbox) > MAX_OUTBOX:
            raise WatchError(f"'outbox' must be a list of at most {MAX_OUTBOX} events")
        dropped = data.get("dropped", 0)
        if not _is_count(dropped):
            raise WatchError("'dropped' must be a count")
        return cls(amount, dict(low), [_pending(p, n) for n, p in enumerate(outbox)], dropped)


def _keys(data: dict[str, Any], required: set[str], optional: set[str], where: str) -> None:
    missing = required - data.keys()
    extra = data.keys() - required - optional
    if missing or extra:
        raise WatchError(f"{where} lacks {sorted(missing)} or has unknown {sorted(extra)[:5]}")


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= 2**53


def _text(value: Any, what: str, limit: int = MAX_FIELD_CHARS) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise WatchError(f"{what} must be text of at most {limit} characters")
    return value


def _pending(item: Any, n: int) -> Pending:
    where = f"outbox[{n}]"
    if not isinstance(item, dict):
        raise WatchError(f"{where} must be an object")
    _keys(item, {"event", "channels"}, {"attempts", "last_error"}, where)
    channels = item["channels"]
    if not isinstance(channels, list) or not set(channels) <= CHANNEL_NAMES:
        raise WatchError(f"{where}.channels must list some of {sorted(CHANNEL_NAMES)}")
    attempts = item.get("attempts", 0)
    if not _is_count(attempts):
        raise WatchError(f"{where}.attempts must be a count")
    last_error = item.get("last_error")
    if last_error is not None:
        _text(last_error, f"{where}.last_error", MAX_ERROR_CHARS)
    return Pending(
        _event(item["event"], where), list(dict.fromkeys(channels)), attempts, last_error
    )


def _event(event: Any, where: str) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise WatchError(f"{where}.event must be an object")
    _keys(event, {"id", "type", "created_at", "data"}, set(), f"{where}.event")
    if not isinstance(event["id"], str) or not _EVENT_ID.fullmatch(event["id"]):
        raise WatchError(f"{where}.event.id is not a watcher's event id")
    if event["type"] not in _EVENT_TYPES:
        raise WatchError(f"{where}.event.type is not one of {sorted(_EVENT_TYPES)}")
    _text(event["created_at"], f"{where}.event.created_at", 40)
    data = event["data"]
    if not isinstance(data, dict) or len(data) > 10:
        raise WatchError(f"{where}.event.data must be an object of at most 10 fields")
    for key, value in data.items():
        _text(value, f"{where}.event.data[{str(key)[:20]!r}]")
    return event


def _trusted(path: Path, info: os.stat_result) -> None:
    """Refuse a state file others could have written (its events would be signed)."""
    if not stat.S_ISREG(info.st_mode):
        raise WatchError(f"the state file {path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise WatchError(f"the state file {path} belongs to another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise WatchError(
            f"the state file {path} is writable by others (mode "
            f"{stat.S_IMODE(info.st_mode):o}); chmod go-w it after checking its events"
        )
    directory = os.stat(path.parent)
    shared = directory.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if shared and not directory.st_mode & stat.S_ISVTX:
        raise WatchError(
            f"the directory {path.parent} is writable by others, who could replace the state"
            " file; use a private directory"
        )


def load_state(path: Path) -> State:
    """The state in ``path`` (a fresh state if there is no file yet).

    Raises :class:`WatchError` if the file is untrusted, larger than
    :data:`MAX_STATE_BYTES`, not JSON, or not a state.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return State()
    except OSError as exc:
        raise WatchError(f"cannot read the state file {path}: {exc.strerror}") from None
    try:
        _trusted(path, os.fstat(fd))
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_STATE_BYTES and (chunk := os.read(fd, 1 << 16)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise WatchError(f"cannot read the state file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_STATE_BYTES:
        raise WatchError(f"the state file {path} is larger than {MAX_STATE_BYTES} bytes")
    try:
        data = json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise WatchError(f"the state file {path} is not JSON: {exc}") from None
    try:
        return State.from_json(data)
    except WatchError as exc:
        raise WatchError(f"the state file {path} is damaged: {exc}") from None


def save_state(path: Path, state: State) -> None:
    """Replace ``path`` atomically and durably (a crash leaves the old or the new file)."""
    body = json.dumps(state.to_json(), separators=(",", ":")).encode("utf-8")
    while len(body) > MAX_STATE_BYTES and state.outbox:  # cannot happen within the bounds
        state.dropped += 1
        del state.outbox[0]
        body = json.dumps(state.to_json(), separators=(",", ":")).encode("utf-8")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextlib.contextmanager
def lock_state(path: Path, wait_s: float) -> Iterator[None]:
    """Hold ``<path>.lock`` exclusively while the block runs.

    Waits up to ``wait_s`` for another watcher to let go (an overlapping cron run), then
    raises :class:`WatchError`. The lock is the kernel's (``flock``): it goes with the
    process, so a crashed watcher never leaves it behind.
    """
    lock_path = path.with_name(path.name + ".lock")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise WatchError(f"cannot open the lock {lock_path}: {exc.strerror}") from None
    try:
        give_up = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise WatchError(f"cannot lock {lock_path}: {exc.strerror}") from None
            if time.monotonic() >= give_up:
                raise WatchError(
                    f"another birdbalance watch is using {path} (it holds {lock_path})"
                )
            time.sleep(_LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # releases the lock
