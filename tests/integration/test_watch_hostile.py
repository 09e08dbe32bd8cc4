"""``birdbalance watch`` against hostile receivers, commands and endpoints.

Each send has one deadline for the whole of it, a delivery round has a budget, a
command cannot flood the watcher's memory, outlive its deadline through a grandchild,
or see the access key and secrets; an odd reading is logged and skipped; SIGTERM ends
the watcher within one send's deadline; two watchers never share a state file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from birdbalance.client import Balance
from birdbalance.watch import (
    MAX_COMMAND_OUTPUT_BYTES,
    CommandChannel,
    Rule,
    State,
    WebhookChannel,
    deliver,
    observe,
)
from tests.receivers import HostileReceiver
from tests.servers import cli

SECRET = "whsec_watch-hostile-0123456789"
KEY = "live_" + "k" * 20
SLACK_S = 1.0  # for a loaded machine: three test workers share two cores


def _event() -> tuple[dict[str, Any], bytes]:
    state = State()
    [event] = observe(
        state, Balance("prepaid", "euros", Decimal(3)), [Rule(Decimal(5))], [], {}, _now()
    )
    return event, json.dumps(event).encode()


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


@pytest.mark.parametrize(
    ("mode", "delivered"),
    [("trickle", True), ("flood", True), ("silent", False), ("trickled-head", False),
     ("redirect", False)],
)  # fmt: skip
def test_a_webhook_send_ends_within_its_deadline(mode: str, delivered: bool) -> None:
    receiver = HostileReceiver(mode).start()
    event, body = _event()
    try:
        started = time.monotonic()
        channel = WebhookChannel(receiver.url, SECRET, timeout_s=1.0)
        if delivered:  # a 2xx status is all that counts: the body is never read
            channel.send(event, body, started + 1.0)
        else:
            with pytest.raises((OSError, httpx.HTTPError), match=r"HTTP 302|timed out|deadline"):
                channel.send(event, body, started + 1.0)
        took_s = time.monotonic() - started
    finally:
        receiver.stop()
    assert took_s < (0.5 if delivered else 1.3), (mode, took_s)


def test_a_dead_channel_costs_one_deadline_per_round_and_blocks_no_other(
    tmp_path: Path,
) -> None:
    silent = HostileReceiver("silent").start()
    log = tmp_path / "events.jsonl"
    state = State()
    for amount in ("9", "20", "9", "20", "9"):  # five events for both channels
        observe(state, Balance("prepaid", "euros", Decimal(amount)), [Rule(Decimal(10))],
                ["webhook", "command"], {}, _now())  # fmt: skip
    channels = [
        WebhookChannel(silent.url, SECRET, timeout_s=1.0),
        CommandChannel(["sh", "-c", f"cat >> {log}; echo >> {log}"]),
    ]
    messages: list[str] = []
    try:
        started = time.monotonic()
        sent = deliver(state, channels, lambda s: None, messages.append, budget_s=30)
        took_s = time.monotonic() - started
    finally:
        silent.stop()
    assert sent == 5 and len(log.read_text().split()) == 5  # the command got every one
    assert len(messages) == 1 and "webhook" in messages[0]  # one try at the dead receiver
    assert 1.0 <= took_s < 1.5 + SLACK_S, took_s
    assert [p.channels for p in state.outbox] == [["webhook"]] * 5  # kept, in order
    assert [p.attempts for p in state.outbox] == [1, 0, 0, 0, 0]


def test_no_send_starts_past_the_round_budget_or_once_stopping() -> None:
    class Slow:
        name = "command"
        timeout_s = 5.0
        calls = 0

        def send(self, event: dict[str, Any], body: bytes, deadline: float) -> None:
            Slow.calls += 1
            time.sleep(0.2)

    state = State()
    for amount in ("9", "20") * 10:
        observe(state, Balance("prepaid", "euros", Decimal(amount)), [Rule(Decimal(10))],
                ["command"], {}, _now())  # fmt: skip
    started = time.monotonic()
    deliver(state, [Slow()], lambda s: None, print, budget_s=0.5)
    assert Slow.calls == 3 and time.monotonic() - started < 0.8
    assert len(state.outbox) == 17  # the rest waits for the next round
    stop = threading.Event()
    stop.set()
    deliver(state, [Slow()], lambda s: None, print, budget_s=30, stop=stop)
    assert Slow.calls == 3


def _send(channel: CommandChannel) -> float:
    event, body = _event()
    started = time.monotonic()
    channel.send(event, body, started + channel.timeout_s)
    return time.monotonic() - started


def test_the_command_does_not_inherit_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = {
        "MESSAGEBIRD_ACCESS_KEY": KEY,
        "BIRDBALANCE_WATCH_WEBHOOK_SECRET": SECRET,
        "BIRDBALANCE_SMTP_PASSWORD": "smtp-password-123",
        "BIRDBALANCE_DATABASE_URL": "postgresql://u:db-password-456@h/d",
    }
    for name, value in private.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME_OF_THE_TEST", "kept")
    seen = tmp_path / "env.txt"
    _send(CommandChannel(["sh", "-c", f"env > {seen}"]))
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert env["HOME_OF_THE_TEST"] == "kept" and env["BIRDBALANCE_EVENT_TYPE"] == "balance.low"
    for name, value in private.items():
        assert name not in env and value not in seen.read_text()


def test_a_command_that_floods_or_hangs_is_cut_at_its_deadline() -> None:
    # Prints without end: read and thrown away, killed at the deadline.
    with pytest.raises(OSError, match="ran longer than 1 s"):
        _send(CommandChannel(["yes", "flood"], timeout_s=1.0))
    # 64 MiB then a failure: only the first bytes are kept, for one log line.
    started = time.monotonic()
    with pytest.raises(OSError, match="exited 3: y y y") as failure:
        _send(CommandChannel(["sh", "-c", "yes y | head -c 67108864; exit 3"], timeout_s=20))
    assert len(str(failure.value)) < 300 and time.monotonic() - started < 10
    assert MAX_COMMAND_OUTPUT_BYTES == 4096


def test_a_grandchild_cannot_hold_the_watcher() -> None:
    marker = f"{time.time() % 1000:.3f}"
    # The command exits at once; what it left behind is not waited for.
    assert _send(CommandChannel(["sh", "-c", f"sleep 7{marker} & exit 0"], timeout_s=5)) < 1.5
    # A command past its deadline dies with its whole group.
    with pytest.raises(OSError, match="ran longer"):
        _send(CommandChannel(["sh", "-c", f"sleep 8{marker} & sleep 9{marker}"], timeout_s=0.5))
    time.sleep(0.2)
    alive = subprocess.run(["pgrep", "-f", f"sleep [89]{marker}"], capture_output=True)
    assert alive.stdout == b"", alive.stdout
    subprocess.run(["pkill", "-f", f"sleep 7{marker}"], check=False)


def test_stopping_kills_a_command_at_once() -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(OSError, match="stopping"):
        _send(CommandChannel(["sleep", "30"], stop=stop))
    assert time.monotonic() - started < 0.8


class _Script:
    """A balance endpoint answering the given bodies in turn (the last one again after)."""

    def __init__(self, *bodies: str) -> None:
        self.bodies = list(bodies)
        self.reads = 0
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = script.bodies[min(script.reads, len(script.bodies) - 1)].encode()
                script.reads += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def _balance(amount: str, payment: str = "prepaid") -> str:
    return f'{{"payment":"{payment}","type":"euros","amount":{amount}}}'


@pytest.fixture
def script() -> Iterator[_Script]:
    server = _Script(
        _balance("20"),
        _balance("1.0000001"),  # more places than a balance has
        _balance("1e30"),  # far past any balance
        _balance("7", payment="weekly"),
        '{"payment":"prepaid","type":"euros","amount":"7"}',  # a string: the client refuses it
        _balance("5"),
    )
    yield server
    server.close()


def _watch(url: str, state: Path, *extra: str, **env: str) -> subprocess.Popen[str]:
    environ = {**os.environ, "MESSAGEBIRD_ACCESS_KEY": KEY, **env}
    return subprocess.Popen(
        [sys.executable, "-m", "birdbalance", "watch", "--base-url", url, "--state", str(state),
         "--below", "10", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ,
    )  # fmt: skip


def _first_event(watcher: subprocess.Popen[str]) -> dict[str, Any]:
    assert watcher.stdout is not None
    line = watcher.stdout.readline()
    assert line, watcher.stderr.read() if watcher.stderr else ""
    return json.loads(line)  # type: ignore[no-any-return]


def test_odd_readings_are_skipped_and_watching_goes_on(script: _Script, tmp_path: Path) -> None:
    watcher = _watch(script.url, tmp_path / "w.json", "--interval", "1", "--timeout", "2")
    try:
        event = _first_event(watcher)  # the sixth reading: 5, below 10
    finally:
        watcher.send_signal(signal.SIGTERM)
        _, stderr = watcher.communicate(timeout=10)
    assert event["type"] == "balance.low" and event["data"]["available"] == "5"
    assert watcher.returncode == 0 and "Traceback" not in stderr
    assert stderr.count("skipped a reading") == 3, stderr
    assert "decimal places" in stderr and "outside" in stderr and "weekly" in stderr
    assert "could not read the balance: ResponseError" in stderr
    assert json.loads((tmp_path / "w.json").read_text())["amount"] == "5"


@pytest.mark.parametrize("channel", ["webhook", "command"])
def test_sigterm_ends_the_watcher_within_one_deadline(channel: str, tmp_path: Path) -> None:
    server = _Script(_balance("5"))
    silent = HostileReceiver("silent").start()
    state = tmp_path / "w.json"
    extra = ("--webhook", silent.url) if channel == "webhook" else ("--command", "sleep 60")
    watcher = _watch(server.url, state, "--timeout", "2", *extra,
                     BIRDBALANCE_WATCH_WEBHOOK_SECRET=SECRET)  # fmt: skip
    try:
        _first_event(watcher)  # printed, saved, and now being sent
        time.sleep(0.3)
        started = time.monotonic()
        watcher.send_signal(signal.SIGTERM)
        _, stderr = watcher.communicate(timeout=10)
        took_s = time.monotonic() - started
    finally:
        silent.stop()
        server.close()
    assert watcher.returncode == 0 and "Traceback" not in stderr, stderr
    # The send's 2 s deadline began before the signal; the slack is for a loaded CI machine
    # (three test workers on two cores), where the process's own exit can take a second.
    assert took_s < (2.0 + SLACK_S if channel == "webhook" else SLACK_S), took_s
    [owed] = json.loads(state.read_text())["outbox"]  # kept for the next run
    assert owed["channels"] == [channel]


def test_two_watchers_never_share_a_state_file(tmp_path: Path) -> None:
    server = _Script(_balance("5"))
    state = tmp_path / "w.json"
    first = _watch(server.url, state, "--interval", "60")
    try:
        _first_event(first)
        second = cli("watch", "--base-url", server.url, "--state", str(state), "--below", "10",
                     "--once", "--timeout", "1", db_url="sqlite:///unused.db",
                     env={"MESSAGEBIRD_ACCESS_KEY": KEY})  # fmt: skip
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=10)
        server.close()
    assert second.returncode == 1 and "another birdbalance watch" in second.stderr
    assert second.stdout == ""  # it raised nothing: the crossing was the first one's
    state.chmod(0o622)
    refused = cli("watch", "--base-url", server.url, "--state", str(state), "--once",
                  db_url="sqlite:///unused.db", env={"MESSAGEBIRD_ACCESS_KEY": KEY})  # fmt: skip
    assert refused.returncode == 1 and "writable by others" in refused.stderr
    assert "Traceback" not in refused.stderr
