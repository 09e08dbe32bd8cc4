"""The process's reader threads: store reads of the admin API and the dashboard.

A read that can scan (a search, a filtered listing, a statement) must never run on the
event loop, where it would hold up every ``GET /balance``. Reads run on a few threads of
their own; SQLite and psycopg release the GIL while the database works. Reads waiting
for a thread are bounded: past :data:`MAX_READS_WAITING` a read is refused with 503 at
once, so a greedy client cannot queue work without end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

from birdbalance.errors import ServiceUnavailable

T = TypeVar("T")

#: Reads queued or running at once in one process; more are refused with 503.
MAX_READS_WAITING: Final = 256


class ReaderPool:
    """A bounded pool of reader threads."""

    def __init__(self, threads: int, max_waiting: int = MAX_READS_WAITING) -> None:
        assert 1 <= threads <= 64 and max_waiting >= threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="birdbalance-reader")
        self._max_waiting = max_waiting
        self._waiting = 0

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a reader thread (503 when too many reads are waiting)."""
        if self._waiting >= self._max_waiting:
            raise ServiceUnavailable("too many reads waiting, try again")
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        finally:
            self._waiting -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
