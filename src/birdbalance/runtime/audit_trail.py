"""The audit log's writer: admin actions appended in batches, on the writer threads,
behind a bounded queue, retried until they commit."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final

from birdbalance.errors import ServiceUnavailable
from birdbalance.records import AuditRecord
from birdbalance.representations import audit_json
from birdbalance.storage import Store

#: Records waiting to be written; a full queue makes admin requests wait (backpressure).
MAX_AUDIT_QUEUE: Final = 10_000
#: Most records one audit transaction writes.
MAX_AUDIT_BATCH: Final = 500
#: How long records nobody waits for (ledger entries') wait for company before a commit.
AUDIT_LINGER_S: Final = 0.05
#: The first pause before an audit batch is written again, and the longest.
AUDIT_RETRY_FIRST_S: Final = 0.05
AUDIT_RETRY_CAP_S: Final = 2.0
#: A failing batch is logged at its first failure and every this many after it.
AUDIT_RETRY_LOG_EVERY: Final = 30
#: How long shutdown keeps retrying what is left before logging it instead.
AUDIT_SHUTDOWN_S: Final = 10.0

logger = logging.getLogger("birdbalance.audit")

#: A queued record, and the future of whoever waits for its commit (None: nobody).
_Queued = tuple[AuditRecord, "asyncio.Future[None] | None"]


class AuditTrail:
    """Appends audit records in batches through ``write`` (the writer threads).

    :meth:`record` returns once the record is queued; await :meth:`written` (what the
    admin API does for every action but ledger entries) to know it is committed.

    A batch that fails to commit (a busy, locked or unreachable database) is retried
    with capped, jittered backoff until it commits: while the process lives a queued
    record is only ever delayed, never dropped. A waiter gives up after
    ``wait_timeout_s`` with a 503 (the record stays queued). At shutdown
    :meth:`close` keeps retrying for :data:`AUDIT_SHUTDOWN_S`, then logs every record it
    could not write, in full, so that none is lost silently.
    """

    def __init__(
        self,
        store: Store,
        write: Callable[[Callable[[], Any]], Awaitable[Any]],
        *,
        wait_timeout_s: float = 10.0,
    ):
        assert wait_timeout_s > 0
        self._store = store
        self._write = write
        self._wait_timeout_s = wait_timeout_s
        self._queue: asyncio.Queue[_Queued] | None = None
        self._task: asyncio.Task[None] | None = None
        #: Set when a record somebody waits for is queued: it ends the linger at once.
        self._urgent: asyncio.Event | None = None
        # Jitter only spreads retries out; it needs no cryptographic randomness.
        self._rng = random.Random()  # noqa: S311

    def _started(self) -> asyncio.Queue[_Queued]:
        if self._queue is None:
            self._queue = asyncio.Queue(MAX_AUDIT_QUEUE)
            self._urgent = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="birdbalance-audit"
            )
        return self._queue

    async def record(self, record: AuditRecord) -> None:
        """Queue ``record`` (nobody waits for it to commit: a ledger entry's record).

        Such records linger up to :data:`AUDIT_LINGER_S` to share a commit (a busy
        ledger's entries would otherwise add a commit per group commit). A failure to
        write them is retried, and logged, never raised.
        """
        await self._started().put((record, None))

    async def written(self, record: AuditRecord) -> None:
        """Queue ``record`` and wait until it is committed (at most ``wait_timeout_s``:
        then :class:`ServiceUnavailable`, and the record is still written later)."""
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # If the waiter gives up, nobody retrieves the outcome: mark it retrieved.
        committed.add_done_callback(lambda f: f.cancelled() or f.exception())
        await self._started().put((record, committed))
        assert self._urgent is not None
        self._urgent.set()
        try:
            await asyncio.wait_for(asyncio.shield(committed), self._wait_timeout_s)
        except TimeoutError:
            raise ServiceUnavailable(
                "the audit log cannot be written right now; the action was applied and its"
                " record will be written as soon as the database accepts it"
            ) from None

    async def _run(self) -> None:
        queue = self._started()
        urgent = self._urgent
        assert urgent is not None
        batch: list[_Queued] = []
        try:
            while True:
                batch = [await queue.get()]
                if batch[0][1] is None and not urgent.is_set():
                    # One timer per batch, not one per record: the linger ends at its
                    # deadline or as soon as a record somebody waits for is queued.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(urgent.wait(), AUDIT_LINGER_S)
                urgent.clear()
                while len(batch) < MAX_AUDIT_BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                await self._flush(batch)
                batch = []
        except asyncio.CancelledError:
            if batch:  # taken from the queue but not yet written: shutting down, write it
                await self._flush(batch, give_up_s=AUDIT_SHUTDOWN_S)
            raise

    async def _flush(
        self,
        batch: list[_Queued],
        *,
        give_up_s: float | None = None,
    ) -> None:
        """Commit ``batch``, retrying until it commits (or ``give_up_s`` has passed)."""
        records = [record for record, _ in batch]
        loop = asyncio.get_running_loop()
        give_up_at = None if give_up_s is None else loop.time() + give_up_s
        pause_s = AUDIT_RETRY_FIRST_S
        for failures in itertools.count(1):
            try:
                await self._write(lambda: self._store.append_audit(records))
                break
            except Exception as exc:  # noqa: BLE001 -- retried: a record is never dropped
                if failures == 1 or failures % AUDIT_RETRY_LOG_EVERY == 0:
                    logger.warning(
                        "writing %d audit records failed (%d tries so far), retrying: %s",
                        len(records),
                        failures,
                        exc,
                    )
                if give_up_at is not None and loop.time() >= give_up_at:
                    for record in records:
                        logger.error("audit record not written at shutdown: %s", _as_json(record))
                    for _, future in batch:
                        if future is not None and not future.done():
                            future.set_exception(exc)
                    return
                await asyncio.sleep(pause_s * (0.5 + self._rng.random() / 2))
                pause_s = min(AUDIT_RETRY_CAP_S, pause_s * 2)
        for _, future in batch:
            if future is not None and not future.done():
                future.set_result(None)

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._queue is None or self._task is None:
            return
        pending: list[_Queued] = []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if pending:
            await self._flush(pending, give_up_s=AUDIT_SHUTDOWN_S)


def _as_json(record: AuditRecord) -> str:
    return json.dumps(audit_json(record), separators=(",", ":"), sort_keys=True, default=str)
