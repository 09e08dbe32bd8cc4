"""The limits of ``POST /v1/bulk`` at the serving edge: how big a body may be, and how
many bulk requests one process holds at once.

A bulk body may be far larger than any other admin body (1,000 operations), so each one
in flight is memory: a process holds at most :data:`MAX_BULK_IN_FLIGHT` of them, from the
first byte read to the end of their write, and answers any more with 503 and
``Retry-After`` at once, before reading their bodies. A client that goes away does not
free its slot before its write is over (the write goes on, and a retry replays it). The
count is the event loop's own (no thread touches it), so it holds under any concurrency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from birdbalance.errors import ServiceUnavailable

T = TypeVar("T")

#: The largest bulk body read (about 4 KiB per operation at 1,000 operations).
MAX_BULK_BODY_BYTES: Final = 4 * 1024 * 1024
#: Bulk requests one process reads and posts at once.
MAX_BULK_IN_FLIGHT: Final = 4


class BulkSlots:
    """A count of the bulk requests in flight, refused past :data:`MAX_BULK_IN_FLIGHT`."""

    def __init__(self, limit: int = MAX_BULK_IN_FLIGHT) -> None:
        assert 1 <= limit <= 64
        self._limit = limit
        self.in_flight = 0

    async def post(
        self,
        read: Callable[[], Awaitable[bytes]],
        write: Callable[[bytes], Awaitable[T]],
    ) -> asyncio.Future[T]:
        """Take a slot (503 when none is free), ``read`` the body, and start ``write``:
        the write's future, which frees the slot when the write ends, awaited or not."""
        if self.in_flight >= self._limit:
            raise ServiceUnavailable(
                f"{self._limit} bulk requests are being posted already, try again"
            )
        self.in_flight += 1
        try:
            body = await read()
            task = asyncio.ensure_future(write(body))
        except BaseException:
            self.in_flight -= 1
            raise
        task.add_done_callback(self._release)
        # Shielded: a client that goes away cancels its wait, not the write or the slot.
        return asyncio.shield(task)

    def _release(self, task: asyncio.Future[Any]) -> None:
        self.in_flight -= 1
        if not task.cancelled():
            task.exception()  # retrieved: a write nobody waits for any more logs nothing
