"""Where the watcher's events go, and the round that hands them out.

Every send has a deadline for the whole of it (connect, send, answer), and a round of
deliveries has a time budget: a receiver that trickles, floods or never answers costs
one deadline per round, and the other channels still get their events. A channel that
fails is not tried again in the same round (its events keep their order), and each
event is tried at most :data:`~birdbalance.watch.state.MAX_ATTEMPTS` times per channel.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import httpx

from birdbalance import call_deadline
from birdbalance.mail import SMTPSettings, event_message, send as send_mail
from birdbalance.watch.state import MAX_ATTEMPTS, MAX_ERROR_CHARS, State
from birdbalance.webhooks import signed_headers

COMMAND_TIMEOUT_S: Final = 30.0
#: Bytes of a command's output kept (for the log line when it fails); the rest is read
#: and thrown away, so a command that prints without end neither blocks nor fills memory.
MAX_COMMAND_OUTPUT_BYTES: Final = 4096
#: Environment variables a command does not inherit: the access key, the signing secret,
#: SMTP and database passwords all live under these prefixes.
PRIVATE_ENV_PREFIXES: Final = ("MESSAGEBIRD_", "BIRDBALANCE_")
_POLL_S: Final = 0.1


class Channel(Protocol):
    """Where events go; ``send`` raises on failure (the event stays queued)."""

    @property
    def name(self) -> str: ...

    @property
    def timeout_s(self) -> float:
        """How long one send may take (its deadline is this from its start)."""
        ...

    def send(self, event: dict[str, Any], body: bytes, deadline: float) -> None:
        """Hand over one event before ``deadline`` (a :func:`time.monotonic` value)."""
        ...


@dataclass
class WebhookChannel:
    """POST the event, signed as the server signs its webhooks. The answer's status is
    all that is used: its body is never read."""

    url: str
    secret: str
    timeout_s: float = 10.0
    transport: httpx.BaseTransport | None = None

    @property
    def name(self) -> str:
        return "webhook"

    def send(self, event: dict[str, Any], body: bytes, deadline: float) -> None:
        headers = signed_headers(body, self.secret, str(event["id"]))
        timeout_s = max(0.001, deadline - time.monotonic())
        transport = call_deadline.transport() if self.transport is None else self.transport
        with (
            call_deadline.until(deadline),
            httpx.Client(timeout=timeout_s, transport=transport) as client,
            client.stream("POST", self.url, content=body, headers=headers) as response,
        ):
            status = response.status_code
        if not 200 <= status < 300:
            raise OSError(f"HTTP {status}")


def child_env(environ: Mapping[str, str], event: dict[str, Any]) -> dict[str, str]:
    """A command's environment: ours without secrets, plus the event's id, type, amount."""
    env = {k: v for k, v in environ.items() if not k.startswith(PRIVATE_ENV_PREFIXES)}
    env["BIRDBALANCE_EVENT_ID"] = str(event["id"])
    env["BIRDBALANCE_EVENT_TYPE"] = str(event["type"])
    env["BIRDBALANCE_EVENT_AVAILABLE"] = str(event["data"]["available"])
    return env


@dataclass
class CommandChannel:
    """Run a command with the event JSON on stdin (and its id, type and amount in the env).

    The command runs in a session of its own. At its deadline, or when ``stop`` is set,
    its whole process group is killed, so a grandchild holding the pipe cannot keep the
    watcher waiting. At most :data:`MAX_COMMAND_OUTPUT_BYTES` of its output are kept.
    """

    argv: Sequence[str]
    timeout_s: float = COMMAND_TIMEOUT_S
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return "command"

    def send(self, event: dict[str, Any], body: bytes, deadline: float) -> None:
        process = subprocess.Popen(  # noqa: S603 -- the operator's own command, no shell
            list(self.argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env(os.environ, event),
            start_new_session=True,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            output = self._converse(process, body, deadline)
        finally:
            process.stdout.close()
            if process.poll() is None:
                _kill_group(process)
        if process.returncode != 0:
            said = output.decode("utf-8", "replace")
            said = " ".join("".join(c if c.isprintable() else " " for c in said).split())
            raise OSError(f"the command exited {process.returncode}: {said[:200]}".rstrip(": "))

    def _converse(self, process: subprocess.Popen[bytes], body: bytes, deadline: float) -> bytes:
        assert process.stdin is not None and process.stdout is not None
        try:
            # An event is a few hundred bytes, far less than a pipe holds: this never blocks.
            process.stdin.write(body)
            process.stdin.close()
        except BrokenPipeError:
            pass  # the command did not read its input; its exit status says the rest
        kept = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while True:
                remaining_s = deadline - time.monotonic()
                if self.stop.is_set() or remaining_s <= 0:
                    _kill_group(process)
                    why = "the watcher is stopping" if self.stop.is_set() else None
                    raise OSError(why or f"the command ran longer than {self.timeout_s:g} s")
                if selector.select(min(_POLL_S, remaining_s)):
                    chunk = os.read(process.stdout.fileno(), 1 << 16)
                    if not chunk:
                        break
                    kept += chunk[: MAX_COMMAND_OUTPUT_BYTES - len(kept)]
                elif process.poll() is not None:
                    break  # exited; a background child of its own may keep the pipe
        process.wait(max(0.001, deadline - time.monotonic()))
        return bytes(kept)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@dataclass
class EmailChannel:
    """Mail the event over SMTP (:mod:`birdbalance.mail`), signed if there is a secret."""

    settings: SMTPSettings
    to: Sequence[str]
    secret: str | None = None
    timeout_s: float = 10.0

    @property
    def name(self) -> str:
        return "email"

    def send(self, event: dict[str, Any], body: bytes, deadline: float) -> None:
        message = event_message(event, body, self.settings.sender, self.to, self.secret)
        deadline_s = max(0.001, deadline - time.monotonic())
        send_mail(self.settings, message, self.to, deadline_s=deadline_s)


def deliver(
    state: State,
    channels: Sequence[Channel],
    save: Callable[[State], None],
    log: Callable[[str], None],
    *,
    budget_s: float = 60.0,
    stop: threading.Event | None = None,
) -> int:
    """Hand queued events to the channels they still need; how many sends succeeded.

    No send starts after ``budget_s`` or once ``stop`` is set, and each ends within its
    channel's ``timeout_s`` (a command also at ``stop``). What is left
    waits for the next round. The state is saved after every successful send, so a crash
    repeats at most the send that was under way.
    """
    by_name = {channel.name: channel for channel in channels}
    round_ends = time.monotonic() + budget_s
    failed: set[str] = set()
    sent = 0
    for pending in list(state.outbox):
        body = json.dumps(pending.event, separators=(",", ":")).encode("utf-8")
        for name in list(pending.channels):
            channel = by_name.get(name)
            if channel is None:  # configured before, not now: nobody to send to
                pending.channels.remove(name)
                continue
            now = time.monotonic()
            if name in failed or now >= round_ends or (stop is not None and stop.is_set()):
                continue
            try:
                channel.send(pending.event, body, now + channel.timeout_s)
            except Exception as exc:  # noqa: BLE001 -- any failure is this send's alone
                failed.add(name)
                pending.attempts += 1
                pending.last_error = f"{name}: {exc}"[:MAX_ERROR_CHARS]
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
