"""Wakes a process when another one (another node, a worker, the CLI) makes webhook
deliveries due: PostgreSQL's ``LISTEN``/``NOTIFY``.

A write that makes deliveries due sends ``NOTIFY`` on :data:`DELIVERIES_CHANNEL` inside
its transaction, so the notification goes out only if it commits, and only after.
:class:`DeliveryListener` holds one connection per process that listens on the channel and
calls ``wake`` for each notification. It is an accelerator, never the only path: the
deliverer still polls, so a lost connection or a lost notification delays a delivery
by at most one poll interval, never loses it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any, Final

import psycopg

from .base import DELIVERIES_CHANNEL

#: How often the listening connection is checked with a query, so one that died
#: silently (a dropped network path) is found and replaced.
IDLE_CHECK_S: Final = 30.0
#: Pause before reconnecting after a failure: doubles from the first to the cap.
RECONNECT_FIRST_S: Final = 1.0
RECONNECT_CAP_S: Final = 30.0

logger = logging.getLogger("birdbalance.webhooks")


class DeliveryListener:
    """One ``LISTEN`` connection that turns notifications into wakes, reconnecting
    with capped, jittered backoff until cancelled."""

    def __init__(self, url: str, options: str, timeout_s: float) -> None:
        assert timeout_s > 0
        self._url = url
        self._options = options
        self._timeout_s = timeout_s
        self._rng = random.Random()  # noqa: S311 -- jitter only
        #: Connections made so far (tests read it).
        self.connections = 0

    async def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` for each notification, until cancelled; never raises otherwise."""
        pause_s = RECONNECT_FIRST_S
        failing = False
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(f"LISTEN {DELIVERIES_CHANNEL}")
                    self.connections += 1
                    if failing:
                        logger.warning("listening for deliveries again")
                    failing, pause_s = False, RECONNECT_FIRST_S
                    # Whatever was raised while nobody listened is due now.
                    wake()
                    await self._relay(conn, wake)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                if not failing:
                    logger.warning("listening for deliveries failed (%s); polling meanwhile", exc)
                failing = True
            await asyncio.sleep(pause_s * (0.5 + self._rng.random() / 2))
            pause_s = min(RECONNECT_CAP_S, pause_s * 2)

    async def _relay(self, conn: psycopg.AsyncConnection[Any], wake: Callable[[], None]) -> None:
        while True:
            # A wake only sets an event: a flood of notifications costs no more than that.
            async for _ in conn.notifies(timeout=IDLE_CHECK_S):
                wake()
            async with asyncio.timeout(self._timeout_s):
                await conn.execute("SELECT 1")

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        async with asyncio.timeout(self._timeout_s):
            return await psycopg.AsyncConnection.connect(
                self._url,
                autocommit=True,
                connect_timeout=max(1, round(self._timeout_s)),
                options=self._options,
                application_name="birdbalance-listen",
            )
