"""What makes a PostgreSQL write's acknowledgement mean what it says under synchronous
replication: a bound on the wait for a standby, and no 201 for a commit no standby
confirmed.

PostgreSQL's COMMIT waits for the synchronous standbys, and ``statement_timeout`` does not
cover that wait (the server disables the timer before it commits). While a failover
leaves a strict cluster without a standby, a write would wait for ever. So every write
transaction is registered here with a deadline, and a watchdog thread cancels the ones
that pass it.

A cancelled wait does not undo the commit: PostgreSQL keeps it, makes it visible, and
reports success with only a WARNING ("canceling wait for synchronous replication ...
might not have been replicated"), SQLSTATE 01000. Acknowledging it would promise two
copies where there may be one, so such a write answers 503 instead; its Idempotency-Key
makes the client's retry safe (it replays the write once it is there, or writes it if the
failover lost it).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import psycopg

from birdbalance.errors import ServiceUnavailable

logger = logging.getLogger("birdbalance.storage")

#: How often the watchdog looks for overdue writes.
WATCH_EVERY_S: Final = 0.1
#: Connections whose current write drew a warning.
_UNCONFIRMED: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()


def watch_warnings(conn: psycopg.Connection[Any]) -> None:
    """Mark ``conn`` when PostgreSQL sends it a plain WARNING (SQLSTATE 01000), the one a
    cancelled wait for a synchronous standby sends. Call once per new connection."""
    ref = weakref.ref(conn)

    def notice(diagnostic: psycopg.errors.Diagnostic) -> None:
        if diagnostic.severity_nonlocalized == "WARNING" and diagnostic.sqlstate == "01000":
            marked = ref()
            if marked is not None:
                _UNCONFIRMED.add(marked)

    conn.add_notice_handler(notice)


class CommitWatch:
    """Bounds write transactions in time; see the module's docstring."""

    def __init__(self, deadline_s: float) -> None:
        assert deadline_s > 0
        self.deadline_s = deadline_s
        self._running: dict[int, tuple[float, psycopg.Connection[Any]]] = {}
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def write(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """Run one write transaction on ``conn``: cancelled if it outlives the deadline,
        and refused with 503 if PostgreSQL warned that its commit is unconfirmed."""
        _UNCONFIRMED.discard(conn)
        token = next(self._tokens)
        with self._lock:
            self._running[token] = (time.monotonic() + self.deadline_s, conn)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch,
                    args=(self._wake,),
                    name="birdbalance-commit-watch",
                    daemon=True,
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                del self._running[token]
        if conn in _UNCONFIRMED:
            _UNCONFIRMED.discard(conn)
            logger.warning("a commit was not confirmed by a synchronous standby: answered 503")
            raise ServiceUnavailable(
                "the write was not confirmed by a standby in time; retry with the same"
                " Idempotency-Key"
            )

    def close(self) -> None:
        """Stop the watchdog (a later write starts it again)."""
        with self._lock:
            thread, self._thread = self._thread, None
            wake, self._wake = self._wake, threading.Event()
        wake.set()
        if thread is not None:
            thread.join(timeout=5)

    def _watch(self, wake: threading.Event) -> None:
        while not wake.wait(WATCH_EVERY_S):
            now = time.monotonic()
            overdue = []
            with self._lock:
                for token, (due, conn) in self._running.items():
                    if due <= now:
                        overdue.append(conn)
                        # Once per write: not cancelled again while it winds down.
                        self._running[token] = (math.inf, conn)
            for conn in overdue:
                logger.warning("a write outlived its %.1f s deadline: cancelled", self.deadline_s)
                with contextlib.suppress(psycopg.Error):
                    conn.cancel_safe(timeout=self.deadline_s)
