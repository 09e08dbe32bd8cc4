"""Counting requests in fixed windows: per process, or shared by every node through Redis.

A bucket (``key:<digest>``, ``addr:<address>``, ``fail:<address>``) counts what happens in
the current window of ``window_s`` seconds; :meth:`Limiter.take` adds one and says how
long to wait when the count passes the limit. Fixed windows let a client make up to twice
the limit across a window boundary; that is the price of one counter per bucket (one
``INCR`` on Redis) instead of a log of timestamps.

:class:`RedisLimiter` shares the counts between nodes. Redis is an aid, not a
dependency: when it does not answer within its timeout the process counts by itself
(:class:`LocalLimiter`) and says so in its log, so an outage of Redis neither blocks
traffic nor lifts the limits.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

logger = logging.getLogger("birdbalance.ratelimit")

#: Buckets one process keeps; past this it forgets the oldest windows first.
MAX_LOCAL_BUCKETS: Final = 100_000
#: The longest a Redis round trip may take before this process counts by itself
#: (the default of ``Settings.redis_timeout_s``).
REDIS_TIMEOUT_S: Final = 0.25
#: Connections to Redis per process.
MAX_REDIS_CONNECTIONS: Final = 32
#: How long to count locally after Redis failed, before trying it again.
REDIS_RETRY_S: Final = 5.0
_PREFIX: Final = "birdbalance:rl:"


class Limiter(Protocol):
    async def take(self, bucket: str, limit: int, window_s: int) -> int:
        """Count one in ``bucket``: 0 if within ``limit``, else the seconds to wait."""

    async def count(self, bucket: str, window_s: int) -> int:
        """How many ``bucket`` holds in the current window (without adding one)."""

    async def close(self) -> None: ...


def retry_after_s(now_s: float, window_s: int) -> int:
    """Whole seconds (at least 1) until the fixed window holding ``now_s`` ends."""
    return max(1, math.ceil((math.floor(now_s / window_s) + 1) * window_s - now_s))


class LocalLimiter:
    """Fixed-window counters in this process's memory, bounded."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, int]] = {}  # bucket -> (window index, count)

    def _window(self, window_s: int) -> int:
        return int(self._clock() // window_s)

    async def take(self, bucket: str, limit: int, window_s: int) -> int:
        assert limit >= 1 and window_s >= 1
        window = self._window(window_s)
        seen_window, seen = self._counts.get(bucket, (window, 0))
        count = (seen if seen_window == window else 0) + 1
        if bucket not in self._counts and len(self._counts) >= MAX_LOCAL_BUCKETS:
            self._forget(window_s)
        self._counts[bucket] = (window, count)
        return 0 if count <= limit else retry_after_s(self._clock(), window_s)

    async def count(self, bucket: str, window_s: int) -> int:
        seen_window, seen = self._counts.get(bucket, (-1, 0))
        return seen if seen_window == self._window(window_s) else 0

    def _forget(self, window_s: int) -> None:
        window = self._window(window_s)
        self._counts = {b: v for b, v in self._counts.items() if v[0] == window}
        if len(self._counts) >= MAX_LOCAL_BUCKETS:
            self._counts.clear()  # a flood of distinct buckets: start over

    async def close(self) -> None:
        self._counts.clear()


class RedisLimiter:
    """Fixed-window counters in Redis (``INCR`` and ``EXPIRE`` in one round trip)."""

    def __init__(
        self,
        url: str,
        clock: Callable[[], float] = time.time,
        timeout_s: float = REDIS_TIMEOUT_S,
    ) -> None:
        import redis.asyncio

        assert 0 < timeout_s <= 10

        # A burst waits (up to the timeout) for one of the pool's connections; the plain
        # pool would refuse the 33rd at once, and the limits would fall back to per node
        # exactly when they matter.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_REDIS_CONNECTIONS,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self._redis: Any = redis.asyncio.Redis(connection_pool=pool)
        self._clock = clock
        self._local = LocalLimiter(clock)
        self._down_until = 0.0

    def _failed(self, exc: Exception) -> None:
        if self._clock() >= self._down_until:
            logger.warning(
                "Redis is unreachable (%s): counting rate limits in this process for %.0f s",
                type(exc).__name__,
                REDIS_RETRY_S,
            )
        self._down_until = self._clock() + REDIS_RETRY_S

    async def take(self, bucket: str, limit: int, window_s: int) -> int:
        assert limit >= 1 and window_s >= 1
        now = self._clock()
        if now < self._down_until:
            return await self._local.take(bucket, limit, window_s)
        key = f"{_PREFIX}{bucket}:{int(now // window_s)}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, window_s + 1)
                count, _ = await pipe.execute()
        except Exception as exc:  # noqa: BLE001 -- any Redis failure: count locally
            self._failed(exc)
            return await self._local.take(bucket, limit, window_s)
        return 0 if int(count) <= limit else retry_after_s(now, window_s)

    async def count(self, bucket: str, window_s: int) -> int:
        now = self._clock()
        if now < self._down_until:
            return await self._local.count(bucket, window_s)
        try:
            value = await self._redis.get(f"{_PREFIX}{bucket}:{int(now // window_s)}")
        except Exception as exc:  # noqa: BLE001 -- any Redis failure: count locally
            self._failed(exc)
            return await self._local.count(bucket, window_s)
        return int(value or 0)

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)
