"""The process's writes: one bounded queue, writer threads, and group commit.

Every write of a process goes through one :class:`WriteQueue`, served by as many writer
threads as the store can run writes at once (one for SQLite, which has a single writer
anyway; half the pool for PostgreSQL), so the event loop never waits on an fsync or a
lock. A writer takes the oldest job. If it is a ledger entry, the writer also takes every
entry queued behind it (up to :data:`MAX_WRITE_BATCH`) and posts them together with
:meth:`Store.append_entries`: one transaction and one commit for the lot, each entry still
judged alone, in order, with its own idempotency and limit check and its own answer. An
entry request's audit record rides along and commits in the same transaction.

A write that makes webhook deliveries due (a crossing, a redelivery) wakes the process's
deliverer once it has committed (``on_deliveries_due``), so alerts leave in milliseconds
instead of at the deliverer's next poll.

Nothing waits to fill a batch. A lone entry is written at once; under load, the entries
that arrive while one commit is in flight share the next one, so the rate of commits
stays what the disk can do while the rate of entries grows with the load. Durability is
untouched: no answer is sent before the commit that holds its entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from birdbalance.errors import ServiceError, ServiceUnavailable
from birdbalance.records import AuditRecord, Idempotency, NewEntry, PostedEntry
from birdbalance.storage import MAX_WRITE_BATCH, Store

T = TypeVar("T")

#: Writes queued or running at once; more are refused with 503.
MAX_PENDING_WRITES: Final = 1024

logger = logging.getLogger("birdbalance.writes")


@dataclass(slots=True)
class _Job:
    future: asyncio.Future[Any]
    #: A ledger entry to post (group-committed with its neighbours) ...
    entry: tuple[NewEntry, Idempotency] | None = None
    #: ... with its audit record, written in the entry's transaction;
    audit: AuditRecord | None = None
    #: ... or any other write, run alone.
    call: Callable[[], Any] | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    queued_at: float = field(default_factory=time.monotonic)


class WriteQueue:
    """The bounded queue of a process's writes and the threads that commit them."""

    def __init__(
        self,
        store: Store,
        writers: int,
        max_pending: int = MAX_PENDING_WRITES,
        *,
        max_wait_s: float = 10.0,
        on_deliveries_due: Callable[[], None] | None = None,
    ):
        assert 1 <= writers <= 100 and max_pending >= 1 and max_wait_s > 0
        self._store = store
        self._on_deliveries_due = on_deliveries_due
        self._max_pending = max_pending
        self._max_wait_s = max_wait_s
        self._jobs: deque[_Job] = deque()
        self._pending = 0
        self._closing = False
        self._ready = threading.Condition()
        #: How many commits posted how many entries (tests and benchmarks read it).
        self.batch_sizes: dict[int, int] = {}
        self._threads = [
            threading.Thread(target=self._serve, name=f"birdbalance-writer-{n}", daemon=True)
            for n in range(writers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting for a writer."""
        return len(self._jobs)

    async def submit_entry(
        self, new: NewEntry, idem: Idempotency, audit: AuditRecord | None = None
    ) -> tuple[PostedEntry | Exception, bool]:
        """Post one entry in the next group commit: its own answer (the entry, or the
        error it got), and whether ``audit`` was committed with it.

        ``audit`` (the request's record, its status and outcome still to fill) is
        appended in the entry's transaction when that transaction commits; when it does
        not (the database refused the whole batch), the caller records it itself.
        Raises, with nothing tried, when the write cannot be queued or waited too long.
        """
        answer: tuple[PostedEntry | Exception, bool] = await self._submit(
            entry=(new, idem), audit=audit
        )
        return answer

    async def call(self, fn: Callable[[], T]) -> T:
        """Run any other write on a writer thread, alone."""
        result: T = await self._submit(call=fn)
        return result

    async def _submit(self, **job: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with self._ready:
            if self._closing:
                raise ServiceUnavailable("the server is shutting down")
            if self._pending >= self._max_pending:
                raise ServiceUnavailable("too many writes waiting, try again")
            self._pending += 1
            self._jobs.append(_Job(future, **job))
            self._ready.notify()
        return await future

    def close(self) -> None:
        """Finish every queued write, then stop the writer threads."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()

    # ------------------------------------------------------------------ writer threads

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._jobs and not self._closing:
                    self._ready.wait()
                if not self._jobs:
                    return
                batch = [self._jobs.popleft()]
                if batch[0].entry is not None:
                    while (
                        self._jobs
                        and self._jobs[0].entry is not None
                        and len(batch) < MAX_WRITE_BATCH
                    ):
                        batch.append(self._jobs.popleft())
            try:
                fresh = self._drop_stale(batch)
                if fresh and fresh[0].call is not None:
                    self._run_call(fresh[0])
                elif fresh:
                    self._run_entries(fresh)
                self._wake_deliverer()
            finally:
                with self._ready:
                    self._pending -= len(batch)

    def _wake_deliverer(self) -> None:
        """After the commit (the deliverer's claim must see what was raised): wake it if
        this write made deliveries due. A writer thread must outlive any failure here;
        the deliverer's poll is the fallback."""
        try:
            if self._store.take_deliveries_due() and self._on_deliveries_due is not None:
                self._on_deliveries_due()
        except Exception:
            logger.exception("waking the deliverer failed")

    def _drop_stale(self, batch: list[_Job]) -> list[_Job]:
        """Refuse the jobs that waited past ``max_wait_s`` (a writer stuck on a lock, a
        full disk): their clients get a 503 by then, instead of queueing behind it."""
        now = time.monotonic()
        fresh: list[_Job] = []
        stale: list[tuple[_Job, Any, BaseException | None]] = []
        for job in batch:
            if now - job.queued_at > self._max_wait_s:
                refused = ServiceUnavailable(
                    f"the write waited over {self._max_wait_s:g} s for the database;"
                    " nothing was written, try again"
                )
                stale.append((job, None, refused))
            else:
                fresh.append(job)
        _settle(stale)
        return fresh

    def _run_call(self, job: _Job) -> None:
        assert job.call is not None
        try:
            result = job.call()
        except BaseException as exc:  # noqa: BLE001 -- the request's handler raises it
            _settle([(job, None, exc)])
        else:
            _settle([(job, result, None)])

    def _run_entries(self, batch: list[_Job]) -> None:
        entries = [job.entry for job in batch if job.entry is not None]
        assert len(entries) == len(batch)
        audits = [job.audit for job in batch]
        self.batch_sizes[len(batch)] = self.batch_sizes.get(len(batch), 0) + 1
        try:
            answers = self._append(entries, audits)
        except ServiceError as exc:
            # The database refused the transaction (unavailable, busy): all share it.
            answers = [(exc, False)] * len(batch)
        except Exception as exc:  # noqa: BLE001 -- isolated below
            answers = self._isolate(entries, audits, exc)
        assert len(answers) == len(batch)
        _settle([(job, answer, None) for job, answer in zip(batch, answers, strict=True)])

    def _append(
        self, entries: list[tuple[NewEntry, Idempotency]], audits: list[AuditRecord | None]
    ) -> list[tuple[Any, bool]]:
        """Each entry's answer, and whether its audit record committed with it."""
        if all(audit is None for audit in audits):
            return [(result, False) for result in self._store.append_entries(entries)]
        return [(result, True) for result in self._store.append_entries(entries, audits)]

    def _isolate(
        self,
        entries: list[tuple[NewEntry, Idempotency]],
        audits: list[AuditRecord | None],
        failure: Exception,
    ) -> list[tuple[Any, bool]]:
        """Answers once a group commit failed unexpectedly: first, if it carried audit
        records, the same entries without them (a log that cannot be written must not
        stop the ledger; the audit trail then writes them, retried), then each entry
        alone."""
        logger.warning("a group commit of %d failed (%r); trying again", len(entries), failure)
        nobody: list[AuditRecord | None] = [None] * len(entries)
        if audits != nobody:
            try:
                return self._append(entries, nobody)
            except ServiceError as exc:
                return [(exc, False)] * len(entries)
            except Exception as exc:  # noqa: BLE001 -- isolated below
                failure = exc
        if len(entries) == 1:
            return [(failure, False)]
        answers: list[tuple[Any, bool]] = []
        for entry in entries:
            try:
                answers += self._append([entry], [None])
            except Exception as exc:  # noqa: BLE001 -- becomes this entry's answer
                answers.append((exc, False))
        return answers


def _settle(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
    """Hand each job its result or error, on its own event loop.

    One callback per loop for the whole batch: ``call_soon_threadsafe`` wakes the loop
    through its self-pipe (a system call each), so a batch of 64 entries wakes it once
    instead of 64 times.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, settled in by_loop.items():
        # A closed loop (RuntimeError) means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_on_loop, settled)


def _settle_on_loop(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, result, error in outcomes:
        # The client may have gone (the future cancelled); the write stands and a retry
        # with the same Idempotency-Key replays it.
        if job.future.cancelled():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
