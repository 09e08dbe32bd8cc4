"""The hold sweeper: expires due holds, so ``GET /balance`` shows their amounts available
again within one interval even on a ledger nobody writes to."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from birdbalance.storage import Store

logger = logging.getLogger("birdbalance.holds")


async def sweep_holds(
    store: Store, interval_s: float, write: Callable[[Callable[[], Any]], Awaitable[Any]]
) -> None:
    """Expire due holds every ``interval_s`` through ``write`` (a writer thread), until
    cancelled. A failed sweep is logged; the next one (or the ledger's next write) retries."""
    assert interval_s > 0
    while True:
        await asyncio.sleep(interval_s)
        try:
            await write(store.expire_holds)
        except Exception as exc:  # noqa: BLE001 -- a sweep must never end the loop
            logger.warning("expiring holds failed: %s", exc)
