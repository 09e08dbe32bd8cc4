"""The server process's machinery, behind one object: :class:`Runtime`.

The HTTP layer (:mod:`birdbalance.http`) only routes and handles requests; what runs
beside them lives here:

- :mod:`.writes`: the write queue, its writer threads and the group commit of entries;
- :mod:`.readers`: the bounded reader threads every admin and dashboard read runs on;
- :mod:`.audit_trail`: the audit log's batching writer;
- :mod:`.deliverer`: webhook and email delivery from the outbox, woken by the commits
  that raise events (and, on PostgreSQL, by other processes' ``NOTIFY``);
- :mod:`.sweeper`: the hold sweeper;
- :mod:`.gauges`: what ``GET /metrics`` reads from the database at scrape time.

Everything is built in the constructor (no wiring afterwards); :meth:`Runtime.start`
starts the background tasks on the serving loop, :meth:`Runtime.stop` ends them and
writes what is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

from birdbalance.metrics import Metrics
from birdbalance.settings import Settings
from birdbalance.storage import Store

from .audit_trail import AuditTrail
from .deliverer import Deliverer
from .readers import ReaderPool
from .sweeper import sweep_holds
from .writes import WriteQueue

T = TypeVar("T")

__all__ = ["Runtime"]


class Runtime:
    """A server process's writer and reader threads, audit writer, deliverer and sweeper."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics) -> None:
        writers = store.max_concurrent_writes
        assert 1 <= writers <= 100
        self._store = store
        self._settings = settings
        self.writes = WriteQueue(
            store,
            writers,
            max_wait_s=settings.request_timeout_s,
            on_deliveries_due=self._wake_deliverer,
        )
        # Every read of the admin API and the dashboard runs here, never on the event
        # loop: a search, a filtered listing or a statement can scan, and /balance must
        # not wait for it. SQLite's reads release the GIL while the engine works.
        self.readers = ReaderPool(max(2, writers))
        self.audit_trail = AuditTrail(
            store, self.writes.call, wait_timeout_s=settings.request_timeout_s
        )
        self._deliverer = Deliverer(store, settings, self.writes.call, metrics)
        self._listener = store.delivery_listener()
        self._tasks: list[asyncio.Task[None]] = []

    def _wake_deliverer(self) -> None:
        # Called on a writer thread once a write that made deliveries due has committed.
        self._deliverer.wake()

    async def write(self, fn: Callable[[], T]) -> T:
        """Run a store write on a writer thread (after the writes queued before it)."""
        return await self.writes.call(fn)

    async def read(self, fn: Callable[[], T]) -> T:
        """Run a store read on a reader thread, off the event loop."""
        return await self.readers.run(fn)

    async def start(self) -> None:
        """Start the deliverer (and its listener, where the engine has one) and the hold
        sweeper on the running loop."""
        assert not self._tasks, "started twice"
        interval_s = self._settings.hold_sweep_interval_s
        self._tasks = [
            asyncio.create_task(
                sweep_holds(self._store, interval_s, self.writes.call),
                name="birdbalance-hold-sweeper",
            ),
            asyncio.create_task(self._deliverer.run(), name="birdbalance-webhooks"),
        ]
        if self._listener is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._listener.listen(self._deliverer.wake), name="birdbalance-listen"
                )
            )

    async def stop(self) -> None:
        """Stop the background tasks, write the queued audit records, stop the threads."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.audit_trail.close()
        self.writes.close()
        self.readers.shutdown()

    def __repr__(self) -> str:
        return f"Runtime(store={type(self._store).__name__}, tasks={len(self._tasks)})"
