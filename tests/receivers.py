"""A real webhook receiver on 127.0.0.1 that can be stopped and started on its port."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.servers import free_port

#: Server settings that poll and retry deliveries fast, for tests of outages.
FAST_RETRIES = {
    "BIRDBALANCE_WEBHOOK_POLL_INTERVAL_S": "0.05",
    "BIRDBALANCE_WEBHOOK_RETRY_BASE_S": "0.05",
    "BIRDBALANCE_WEBHOOK_RETRY_CAP_S": "0.3",
    "BIRDBALANCE_WEBHOOK_TIMEOUT_S": "2",
}


@dataclass(frozen=True)
class Received:
    path: str
    body: bytes
    signature: str | None
    event_id: str | None
    at: float
    #: Every header as received (names as sent).
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """Records every POST it answers with 204."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/birdbalance"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            self.path,
                            body,
                            self.headers.get("Birdbalance-Signature"),
                            self.headers.get("Birdbalance-Event-Id"),
                            time.monotonic(),
                            dict(self.headers.items()),
                        )
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout_s: float = 20) -> list[Received]:
        """Wait until ``count`` distinct event ids arrived; return everything received."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len({r.event_id for r in self.received}) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"only {len(self.received)} deliveries arrived: {self.received}")


class HostileReceiver:
    """A raw-socket receiver that answers badly, on purpose.

    ``mode`` is one of:
    - ``"trickle"``: a 200 status line and headers, then one body byte a second, forever;
    - ``"flood"``: a 200 that announces 512 MiB and sends it as fast as it is read;
    - ``"silent"``: accepts the request and never answers;
    - ``"trickled-head"``: its status line and headers, one byte every 50 ms (each byte
      well inside any read timeout);
    - ``"redirect"``: a 302 to another address.
    It counts the connections it got and the bytes it managed to send.
    """

    FLOOD_BYTES = 512 * 1024 * 1024

    def __init__(self, mode: str) -> None:
        assert mode in ("trickle", "flood", "silent", "trickled-head", "redirect")
        self.mode = mode
        self.port = free_port()
        self.connections = 0
        self.sent_bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.mode}"

    def start(self) -> HostileReceiver:
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=128)
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(60)
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
                if self.mode == "silent":
                    while not self._stop.is_set() and conn.recv(65536):
                        pass
                    return
                if self.mode == "trickled-head":
                    for byte in b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 1200:
                        if self._stop.is_set():
                            return
                        conn.sendall(bytes([byte]))
                        time.sleep(0.05)
                    return
                if self.mode == "redirect":
                    conn.sendall(
                        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\n"
                        b"Content-Length: 0\r\n\r\n"
                    )
                    return
                length = self.FLOOD_BYTES if self.mode == "flood" else 3600
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: " + str(length).encode() + b"\r\n\r\n"
                )
                block = b"x" * (1 if self.mode == "trickle" else 1024 * 1024)
                pause_s = 1.0 if self.mode == "trickle" else 0.0
                for _ in range(length // len(block)):
                    if self._stop.is_set():
                        return
                    conn.sendall(block)
                    with self._lock:
                        self.sent_bytes += len(block)
                    if pause_s:
                        time.sleep(pause_s)
            except OSError:
                return
