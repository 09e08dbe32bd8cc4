"""One deadline for a whole synchronous HTTP call, however the peer paces its bytes.

httpx's timeouts bound each socket operation. A peer that trickles its status line or its
headers a byte at a time, each byte inside the read timeout, would hold a synchronous
call for as long as it likes. :func:`transport` gives an httpx transport whose sockets
cut every connect, read and write at the deadline the calling thread set with
:func:`until`; past it they raise httpx's own timeout errors.

(The asynchronous client has no need of this: ``asyncio.timeout`` cancels the whole call.)
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

_deadlines = threading.local()


@contextmanager
def until(deadline: float) -> Iterator[None]:
    """Cut this thread's socket operations on :func:`transport`'s connections at
    ``deadline`` (a :func:`time.monotonic` value) while the block runs."""
    previous = getattr(_deadlines, "at", None)
    _deadlines.at = deadline if previous is None else min(previous, deadline)
    try:
        yield
    finally:
        _deadlines.at = previous


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    deadline: float | None = getattr(_deadlines, "at", None)
    if deadline is None:
        return timeout
    remaining_s = deadline - time.monotonic()
    if remaining_s <= 0:
        raise error("the call's deadline has passed")
    return remaining_s if timeout is None else min(timeout, remaining_s)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        inner = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return _Stream(inner)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def transport() -> httpx.HTTPTransport:
    """An httpx transport (direct connections, certificates verified) honouring :func:`until`."""
    made = httpx.HTTPTransport()
    # httpx takes no network backend; its pool is rebuilt with the same defaults and ours.
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    made._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=5.0,
        network_backend=_Backend(),
    )
    return made
