"""``birdbalance watch``: alerts for any MessageBird-compatible balance, by polling.

The server raises its events inside the write that crosses a threshold. An endpoint we
do not run (MessageBird itself, or a birdbalance we only hold a key for) can only be
polled, so the watcher applies the same rules (:func:`birdbalance.alerts.crossings`) to
each balance it reads, and sends the same events (``balance.low``,
``balance.recovered``, ``balance.depleted``) to its channels: a signed webhook, email,
or a command that gets the event on stdin.

Its state file is its memory: the last amount, each rule's ``low`` flag, and an outbox
of events not yet handed to every channel. It is written atomically (temporary file,
fsync, rename) *before* anything is sent, so a restart neither forgets an event nor
raises it again; a channel that fails gets the event again on the next poll (each event
keeps its id, so receivers can drop the rare repeat of a send that succeeded just
before a crash).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol

import httpx

from birdbalance.alerts import Crossing, EventType, RuleState, crossings, is_low
from birdbalance.client import Balance
from birdbalance.ledger import Payment
from birdbalance.mail import SMTPSettings, event_message
from birdbalance.mail import send as send_mail
from birdbalance.money import decimal_text
from birdbalance.webhooks import signed_headers

#: Decimal places the watcher compares amounts at (MessageBird's amounts have fewer).
SCALE: Final = 6
#: Events kept for channels that keep failing; the oldest go first past this.
MAX_OUTBOX: Final = 1000
#: Attempts per event and channel before the watcher gives up on that pair.
MAX_ATTEMPTS: Final = 50
MAX_RULES: Final = 20
STATE_VERSION: Final = 1
COMMAND_TIMEOUT_S: Final = 30.0


class WatchError(Exception):
    """The watcher cannot go on (an unreadable state file, a bad rule)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Alert below ``below``; recover above ``below + hysteresis`` (asset units)."""

    below: Decimal
    hysteresis: Decimal = Decimal(0)

    @property
    def id(self) -> str:
        return f"below:{decimal_text(self.below)}"


def to_minor(amount: Decimal) -> int:
    """An amount as an integer at :data:`SCALE` places (exact, or an error)."""
    scaled = amount.scaleb(SCALE)
    if scaled != scaled.to_integral_value():
        raise WatchError(f"{amount} has more than {SCALE} decimal places")
    return int(scaled)


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
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise WatchError("the state file is not a birdbalance watch state (version 1)")
        try:
            return cls(
                amount=data["amount"],
                low={str(k): bool(v) for k, v in data["low"].items()},
                outbox=[Pending(**p) for p in data["outbox"]],
                dropped=int(data.get("dropped", 0)),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise WatchError(f"the state file is damaged: {exc!r}") from None


def load_state(path: Path) -> State:
    """The state in ``path`` (a fresh state if there is no file yet)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return State()
    try:
        return State.from_json(json.loads(text))
    except json.JSONDecodeError as exc:
        raise WatchError(f"the state file {path} is not JSON: {exc}") from None


def save_state(path: Path, state: State) -> None:
    """Replace ``path`` atomically and durably (a crash leaves the old or the new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(state.to_json(), file, separators=(",", ":"))
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


def _event(
    crossing: Crossing, balance: Balance, source: dict[str, str], now: datetime
) -> dict[str, Any]:
    data: dict[str, Any] = {
        **source,
        "payment": balance.payment,
        "type": balance.type,
        "available": decimal_text(balance.amount),
    }
    if crossing.threshold_minor is not None:
        data["threshold"] = decimal_text(Decimal(crossing.threshold_minor).scaleb(-SCALE))
    moment = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # A random id: unique across watchers and restarts, so receivers can dedup by it.
    return {
        "id": "evt_w" + secrets.token_hex(12),
        "type": crossing.type.value,
        "created_at": moment,
        "data": data,
    }


def observe(
    state: State,
    balance: Balance,
    rules: Sequence[Rule],
    channels: Sequence[str],
    source: dict[str, str],
    now: datetime,
) -> list[dict[str, Any]]:
    """Apply one reading to ``state`` (in place); the events it raises, also queued.

    The first reading counts as a move from "unknown": a rule whose threshold the balance
    is already below fires ``balance.low`` once, as the operator would want to hear.
    A postpaid balance (MessageBird reports its amount as 0) raises nothing.
    """
    if balance.payment != Payment.PREPAID.value:
        state.amount = decimal_text(balance.amount)
        return []
    after = to_minor(balance.amount)
    before = None if state.amount is None else to_minor(Decimal(state.amount))
    states = [
        RuleState(
            rule.id,
            to_minor(rule.below),
            to_minor(rule.hysteresis),
            state.low.get(rule.id, False),
        )
        for rule in rules
    ]
    if before is None:
        # Nothing known: above every line, so a balance already below one raises it;
        # depletion counts only from a known positive amount.
        raised = [
            Crossing(EventType.LOW, s.id, s.below_minor)
            for s in states
            if is_low(s.below_minor, after) and not s.low
        ]
    else:
        raised = crossings(Payment.PREPAID, None, before, after, states)
    for crossing in raised:
        if crossing.rule_id is not None:
            state.low[crossing.rule_id] = crossing.type is EventType.LOW
    state.amount = decimal_text(balance.amount)
    events = [_event(c, balance, source, now) for c in raised]
    if channels:
        state.outbox += [Pending(event, list(channels)) for event in events]
        if len(state.outbox) > MAX_OUTBOX:
            state.dropped += len(state.outbox) - MAX_OUTBOX
            del state.outbox[: len(state.outbox) - MAX_OUTBOX]
    return events


class Channel(Protocol):
    """Where events go; ``send`` raises on failure (the event stays queued)."""

    @property
    def name(self) -> str: ...

    def send(self, event: dict[str, Any], body: bytes) -> None: ...


@dataclass
class WebhookChannel:
    """POST the event, signed as the server signs its webhooks."""

    url: str
    secret: str
    timeout_s: float = 10.0
    transport: httpx.BaseTransport | None = None

    @property
    def name(self) -> str:
        return "webhook"

    def send(self, event: dict[str, Any], body: bytes) -> None:
        headers = signed_headers(body, self.secret, str(event["id"]))
        with httpx.Client(timeout=self.timeout_s, transport=self.transport) as client:
            response = client.post(self.url, content=body, headers=headers)
        if not 200 <= response.status_code < 300:
            raise OSError(f"HTTP {response.status_code}")


@dataclass
class CommandChannel:
    """Run a command with the event JSON on stdin (and its type and id in the env)."""

    argv: Sequence[str]
    timeout_s: float = COMMAND_TIMEOUT_S

    @property
    def name(self) -> str:
        return "command"

    def send(self, event: dict[str, Any], body: bytes) -> None:
        env = {
            **os.environ,
            "BIRDBALANCE_EVENT_ID": str(event["id"]),
            "BIRDBALANCE_EVENT_TYPE": str(event["type"]),
            "BIRDBALANCE_EVENT_AVAILABLE": str(event["data"]["available"]),
        }
        try:
            done = subprocess.run(  # noqa: S603 -- the operator's own command, no shell
                list(self.argv),
                input=body,
                env=env,
                timeout=self.timeout_s,
                capture_output=True,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise OSError(f"the command ran longer than {self.timeout_s:g} s") from None
        if done.returncode != 0:
            raise OSError(f"the command exited {done.returncode}")


@dataclass
class EmailChannel:
    """Mail the event over SMTP (:mod:`birdbalance.mail`), signed if there is a secret."""

    settings: SMTPSettings
    to: Sequence[str]
    secret: str | None = None

    @property
    def name(self) -> str:
        return "email"

    def send(self, event: dict[str, Any], body: bytes) -> None:
        message = event_message(event, body, self.settings.sender, self.to, self.secret)
        send_mail(self.settings, message, self.to)


def deliver(
    state: State,
    channels: Sequence[Channel],
    save: Callable[[State], None],
    log: Callable[[str], None],
) -> int:
    """Hand every queued event to the channels it still needs; how many sends succeeded.

    The state is saved after every successful send, so a crash repeats at most the send
    that was under way.
    """
    by_name = {channel.name: channel for channel in channels}
    sent = 0
    for pending in list(state.outbox):
        body = json.dumps(pending.event, separators=(",", ":")).encode("utf-8")
        for name in list(pending.channels):
            channel = by_name.get(name)
            if channel is None:  # configured before, not now: nobody to send to
                pending.channels.remove(name)
                continue
            try:
                channel.send(pending.event, body)
            except (OSError, httpx.HTTPError) as exc:
                pending.attempts += 1
                pending.last_error = f"{name}: {exc}"[:300]
                log(f"{pending.event['type']} {pending.event['id']}: {pending.last_error}")
                continue
            pending.channels.remove(name)
            sent += 1
            save(state)
        if not pending.channels:
            state.outbox.remove(pending)
        elif pending.attempts >= MAX_ATTEMPTS:
            log(f"giving up on {pending.event['id']} after {pending.attempts} attempts")
            state.outbox.remove(pending)
            state.dropped += 1
    save(state)
    return sent
