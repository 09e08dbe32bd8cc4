"""A real webhook receiver on 127.0.0.1 that can be stopped and started on its port."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
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
