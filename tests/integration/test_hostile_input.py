"""Hostile HTTP over raw sockets: huge and repeated headers, bytes that are not a key,
and clients too slow to finish a request. The server answers each in its errors shape (or
drops the connection), keeps serving everyone else, and writes nothing."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import ADMIN_TOKEN, Admin, Server

TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    folder: Path = tmp_path_factory.mktemp("hostile")
    server = Server(
        db_url=f"sqlite:///{folder / 'hostile.db'}",
        log_path=folder / "server.log",
        env={"BIRDBALANCE_REQUEST_TIMEOUT_S": str(TIMEOUT_S)},
    ).start()
    admin = Admin(server.url)
    account = admin.account()["id"]
    admin.topup(account, "50")
    key = admin.key(account)["key"]
    admin.http.close()
    yield server, account, key
    server.stop()
    assert "Traceback" not in server.log_path.read_text()


def _connect(server: Server) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return conn


def _exchange(server: Server, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` on a fresh connection; the status, headers and body of the answer
    (status 0: the server closed the connection without one)."""
    with _connect(server) as conn:
        conn.sendall(raw)
        return _read_response(conn)


def _read_response(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            return 0, {}, b""
        if not chunk:
            return 0, {}, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _errors_shape(body: bytes) -> dict[str, object]:
    error = json.loads(body)["errors"][0]
    assert {"code", "description", "parameter"} <= set(error)
    return dict(error)


def _still_serving(server: Server, key: str) -> None:
    started = time.monotonic()
    r = httpx.get(f"{server.url}/balance", headers={"Authorization": f"AccessKey {key}"})
    assert r.status_code == 200 and time.monotonic() - started < 1.0


def test_huge_and_repeated_headers(hostile: tuple[Server, str, str]) -> None:
    server, _, key = hostile
    big = b"AccessKey " + b"A" * 64_000
    status, _, body = _exchange(
        server, b"GET /balance HTTP/1.1\r\nHost: x\r\nAuthorization: " + big + b"\r\n\r\n"
    )
    assert status == 401 and _errors_shape(body)["code"] == 2
    # Past what the server buffers for a header block: refused or dropped, never served.
    many = b"".join(b"X-Pad-%d: %s\r\n" % (n, b"p" * 1000) for n in range(600))
    status, _, _ = _exchange(server, b"GET /balance HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status in (0, 400, 431)
    # Two Authorization headers: one answer, never a 5xx.
    status, _, body = _exchange(
        server,
        b"GET /balance HTTP/1.1\r\nHost: x\r\nAuthorization: AccessKey "
        + key.encode()
        + b"\r\nAuthorization: AccessKey "
        + b"B" * 25
        + b"\r\n\r\n",
    )
    assert status in (200, 401)
    _still_serving(server, key)


@pytest.mark.parametrize(
    "credential",
    [b"AccessKey \x00" + b"A" * 24, b"AccessKey \xff\xfe" + b"A" * 23, b"AccessKey \xc3\xa9" * 5],
    ids=["nul", "not-utf8", "accents"],
)
def test_bytes_that_are_not_a_key(hostile: tuple[Server, str, str], credential: bytes) -> None:
    server, _, key = hostile
    status, _, body = _exchange(
        server, b"GET /balance HTTP/1.1\r\nHost: x\r\nAuthorization: " + credential + b"\r\n\r\n"
    )
    # A NUL is not allowed in a header at all: the HTTP layer may refuse it outright.
    assert status in (400, 401)
    if status == 401:
        assert _errors_shape(body)["code"] == 2
    _still_serving(server, key)


def test_a_client_that_trickles_its_headers_is_dropped(hostile: tuple[Server, str, str]) -> None:
    server, _, key = hostile
    with _connect(server) as conn:
        conn.sendall(b"GET /balance HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        _still_serving(server, key)  # everyone else is served meanwhile
        status, _, _ = _read_response(conn)
        waited_s = time.monotonic() - started
    assert status in (0, 408) and waited_s < TIMEOUT_S + 3


@pytest.mark.parametrize("path", ["/v1/accounts/{account}/charges", "/v1/accounts"])
def test_a_body_that_never_arrives_is_a_408_and_writes_nothing(
    hostile: tuple[Server, str, str], path: str
) -> None:
    server, account, key = hostile
    admin = Admin(server.url)
    entries_before = admin.http.get(f"/v1/accounts/{account}").json()["balances"]["live"]
    accounts_before = len(admin.http.get("/v1/accounts", params={"limit": "500"}).json()["data"])
    body = json.dumps({"amount": "1", "payment": "prepaid", "type": "euros"}).encode()
    with _connect(server) as conn:
        conn.sendall(
            f"POST {path.format(account=account)} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {ADMIN_TOKEN}\r\nIdempotency-Key: slow-{path}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:5]
        )
        started = time.monotonic()
        _still_serving(server, key)
        status, headers, answer = _read_response(conn)
        waited_s = time.monotonic() - started
    assert status == 408 and waited_s < TIMEOUT_S + 3, (status, answer)
    assert _errors_shape(answer)["code"] == 21 and headers.get("connection") == "close"
    assert admin.http.get(f"/v1/accounts/{account}").json()["balances"]["live"] == entries_before
    after = len(admin.http.get("/v1/accounts", params={"limit": "500"}).json()["data"])
    assert after == accounts_before
    admin.http.close()
