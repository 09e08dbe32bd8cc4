"""The client side against hostile or broken servers on loopback.

``birdbalance.Client``/``AsyncClient``, ``birdbalance check`` and ``birdbalance watch``
read a balance from any endpoint. A server that trickles (even its status line), never
ends, sends a gzip bomb, a number with a huge exponent, deep nesting, odd types, a
redirect, or text meant to break a plugin's line must never hang them past their
deadline, exhaust their memory, crash them, or make them lie: every such answer is a
clear client error, ``check`` prints one line and exits 3, and ``watch`` logs it and
goes on. Receivers of ``watch``'s events get the same treatment.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from birdbalance import AsyncClient, Client
from birdbalance.errors import ClientError, ResponseError, Timeout, ValidationError
from tests.servers import cli

KEY = "k" * 25
_OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"

#: What a call may take past its deadline: one more read of the socket, and a machine
#: busy with the rest of the suite.
SLACK_S = 1.0


def _trickle(conn: socket.socket) -> None:
    conn.sendall(_OK_HEAD + b"Content-Length: 1000\r\n\r\n{")
    for _ in range(100):
        time.sleep(0.3)
        conn.sendall(b" ")


def _trickled_head(conn: socket.socket) -> None:
    # Each byte well inside any read timeout: only a deadline for the whole call ends it.
    for byte in _OK_HEAD + b"X-Pad: " + b"a" * 400:
        conn.sendall(bytes([byte]))
        time.sleep(0.05)


def _endless(conn: socket.socket) -> None:
    conn.sendall(_OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    block = b"x" * 65536
    for _ in range(10_000):  # 640 MiB if anyone read it all
        conn.sendall(b"%x\r\n%s\r\n" % (len(block), block))


@functools.cache
def _bomb() -> bytes:
    """128 MiB of zeros, gzipped to about 128 KiB (made once)."""
    return gzip.compress(b"0" * (128 * 1024 * 1024), compresslevel=9)


def _gzip_bomb(conn: socket.socket) -> None:
    bomb = _bomb()
    conn.sendall(
        _OK_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb
    )


def _body(status: bytes, body: bytes) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )

    return answer


HOSTILE: dict[str, tuple[Callable[[socket.socket], None], type[ClientError]]] = {
    "trickle": (_trickle, Timeout),
    "trickled head": (_trickled_head, Timeout),
    "endless": (_endless, ResponseError),
    "gzip bomb": (_gzip_bomb, ResponseError),
    "huge exponent": (
        _body(b"200 OK", b'{"payment":"prepaid","type":"euros","amount":1e999999999}'),
        ResponseError,
    ),
    "huge error code": (
        _body(b"422 Unprocessable", b'{"errors":[{"code":1e999999999,"description":"x"}]}'),
        ValidationError,
    ),
    "deep nesting": (_body(b"200 OK", b"[" * 200_000 + b"]" * 200_000), ResponseError),
    "amount as text": (
        _body(b"200 OK", b'{"payment":"prepaid","type":"euros","amount":"12"}'),
        ResponseError,
    ),
    "redirect": (
        _body(b"302 Found\r\nLocation: http://127.0.0.1:9/balance", b'{"amount":1}'),
        ResponseError,
    ),
}


class HostileServer:
    """Answers every connection on 127.0.0.1 with ``answer``."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(30)
                conn.recv(65536)
                self._answer(conn)
                time.sleep(1)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


@pytest.fixture(params=sorted(HOSTILE))
def hostile(request: pytest.FixtureRequest) -> Iterator[tuple[str, HostileServer]]:
    _bomb()  # before any clock starts
    server = HostileServer(HOSTILE[request.param][0])
    yield request.param, server
    server.close()


def test_the_client_refuses_in_time_and_in_bounds(hostile: tuple[str, HostileServer]) -> None:
    name, server = hostile
    expected = HOSTILE[name][1]
    started = time.monotonic()
    with (
        Client(KEY, server.url, timeout_s=1.5, max_retries=2, backoff_s=0.1) as client,
        pytest.raises(expected),
    ):
        client.balance()
    # One deadline for the whole call (within one more read of the socket, on a machine
    # busy with the rest of the suite): without it, a trickle held the call for 14 s.
    assert time.monotonic() - started < 1.5 + SLACK_S, name


def test_the_async_client_too(hostile: tuple[str, HostileServer]) -> None:
    name, server = hostile

    async def go() -> None:
        async with AsyncClient(KEY, server.url, timeout_s=1.5, backoff_s=0.1) as client:
            await client.balance()

    started = time.monotonic()
    with pytest.raises(HOSTILE[name][1]):
        asyncio.run(go())
    assert time.monotonic() - started < 1.5 + SLACK_S, name


def _check(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``birdbalance check -w 10 -c 5`` against ``url``."""
    return cli(  # type: ignore[no-any-return]
        "check",
        "-w",
        "10",
        "-c",
        "5",
        "--base-url",
        url,
        *extra,
        db_url="sqlite:///unused.db",
        env={"MESSAGEBIRD_ACCESS_KEY": KEY},
    )


def test_check_prints_one_line_and_exits_3(hostile: tuple[str, HostileServer]) -> None:
    name, server = hostile
    result = _check(server.url, "--timeout", "1.5")
    assert result.returncode == 3, (name, result.stdout, result.stderr)
    assert result.stdout.startswith("BALANCE UNKNOWN - ") and result.stdout.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_text_from_the_server_cannot_break_the_plugin_line() -> None:
    body = b'{"payment":"prepaid","type":"euros\\n| injected=1;;;\\r\\nOK","amount":3}'
    server = HostileServer(_body(b"200 OK", body))
    try:
        result = _check(server.url)
    finally:
        server.close()
    assert result.returncode == 2, result.stdout
    line = result.stdout.rstrip("\n")
    assert "\n" not in line and "\r" not in line
    assert line.count("|") == 1 and line.endswith("| balance=3;10:;5:;0;")


def test_watch_logs_the_bad_answer_and_keeps_its_state(
    hostile: tuple[str, HostileServer], tmp_path: Path
) -> None:
    name, server = hostile
    state = tmp_path / "w.json"
    started = time.monotonic()
    result = cli(
        "watch", "--below", "10", "--base-url", server.url, "--state", str(state), "--once",
        "--timeout", "1.5", db_url="sqlite:///unused.db", env={"MESSAGEBIRD_ACCESS_KEY": KEY},
    )  # fmt: skip
    took_s = time.monotonic() - started
    assert result.returncode == 1 and result.stdout == "", (name, result.stdout)
    assert "watch: could not read the balance" in result.stderr, (name, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert took_s < 1.5 + 2.5, (name, took_s)  # the deadline, plus starting Python
    assert json.loads(state.read_text())["amount"] is None


@pytest.mark.parametrize("name", ["trickle", "trickled head", "endless", "gzip bomb"])
def test_the_admin_clients_refuse_in_time_and_in_bounds(name: str) -> None:
    """The bulk client shares the balance client's deadline and bounds: a server that
    trickles (even its status line), never ends or sends a gzip bomb is cut off in time."""
    from birdbalance import AdminClient, AsyncAdminClient

    _bomb()
    answer, expected = HOSTILE[name]
    server = HostileServer(answer)
    operations = [{"type": "charge", "account": "acc_x", "amount": "1"}]

    async def go() -> None:
        async with AsyncAdminClient(server.url, "token", timeout_s=1.5, backoff_s=0.1) as client:
            await client.bulk(operations)

    try:
        for run in ("sync", "async"):
            started = time.monotonic()
            with pytest.raises(expected):
                if run == "sync":
                    with AdminClient(server.url, "token", timeout_s=1.5, backoff_s=0.1) as admin:
                        admin.bulk(operations)
                else:
                    asyncio.run(go())
            assert time.monotonic() - started < 1.5 + SLACK_S, (name, run)
    finally:
        server.close()
