"""Abuse controls: request rate limits and failed-authentication throttling.

- **Per address** (``BIRDBALANCE_RATE_LIMIT_PER_ADDRESS`` requests a second, 0: off),
  checked first for every request but the probes.
- **Per credential** (``BIRDBALANCE_RATE_LIMIT_PER_KEY``, 0: off): an access key on
  ``/balance`` or an admin token on ``/v1/``, counted by its digest.
- **Failed authentication per address**: after ``BIRDBALANCE_AUTH_FAILURES_PER_ADDRESS``
  failures in ``BIRDBALANCE_AUTH_FAILURE_WINDOW_S``, that address's credentials are no
  longer even checked (429 until the window ends), which caps guessing at that many tries
  per window, except credentials that already worked from that address in the last
  window: they still do, so the real key holder is not locked out by a guesser sharing
  their address (a NAT, a proxy).

Every refusal is a 429 in the errors shape (code 29) with ``Retry-After``. The counts
live in a :class:`~birdbalance.ratelimit.Limiter`: Redis when configured (shared by every
node), else this process.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, TypeVar

from birdbalance.errors import TooManyRequests
from birdbalance.ratelimit import Limiter, LocalLimiter, RedisLimiter, retry_after_s
from birdbalance.settings import Settings

from .addresses import client_address, trusted_networks

T = TypeVar("T")

#: Addresses whose working credentials are remembered; more: forget them all.
MAX_REMEMBERED_ADDRESSES: Final = 10_000
#: Working credentials remembered per address.
MAX_REMEMBERED_PER_ADDRESS: Final = 16
_TOO_MANY_FAILURES: Final = "Too many failed attempts from this address"
#: The window of the per-address and per-credential request limits.
REQUEST_WINDOW_S: Final = 1


class Guard:
    """The abuse controls of one process (see the module docstring)."""

    def __init__(self, settings: Settings, limiter: Limiter | None = None) -> None:
        self.per_key = settings.rate_limit_per_key
        self.per_address = settings.rate_limit_per_address
        self.max_failures = settings.auth_failures_per_address
        self.failure_window_s = settings.auth_failure_window_s
        self.trusted = trusted_networks(settings.trusted_proxies)
        if limiter is None and settings.redis_url:
            limiter = RedisLimiter(settings.redis_url, timeout_s=settings.redis_timeout_s)
        elif limiter is None:
            limiter = LocalLimiter()
        self.limiter = limiter
        # address -> {credential digest: until when it counts as known good}
        self._good: dict[str, dict[str, float]] = {}

    def address(self, scope: MutableMapping[str, Any]) -> str:
        return client_address(scope, self.trusted)

    async def admit_address(self, address: str) -> None:
        """The per-address request limit."""
        if self.per_address:
            wait_s = await self.limiter.take(f"addr:{address}", self.per_address, REQUEST_WINDOW_S)
            if wait_s:
                raise TooManyRequests(wait_s, "Too many requests from this address")

    async def admit_credential(self, credential: bytes) -> None:
        """The per-credential request limit (``credential``: a key or token digest)."""
        if self.per_key:
            bucket = f"key:{credential[:16].hex()}"
            wait_s = await self.limiter.take(bucket, self.per_key, REQUEST_WINDOW_S)
            if wait_s:
                raise TooManyRequests(wait_s, "Too many requests with this credential")

    def _known(self, address: str, credential: bytes) -> bool:
        until = self._good.get(address, {}).get(credential.hex())
        return until is not None and until > time.monotonic()

    async def authenticate(
        self,
        scope: MutableMapping[str, Any],
        credential: bytes,
        check: Callable[[], Awaitable[T | None]],
    ) -> T | None:
        """Run ``check`` (what ``credential`` opens, or None) under the failure budget of
        the request's address.

        Whether a failure is answered 401 or 429 is decided by one atomic increment of
        the address's failure count, after the check: however many guesses arrive at
        once, on however many nodes, at most ``max_failures`` of them are told "wrong"
        in a window, and a right guess made past the budget gets the same 429 (so it
        tells nothing). A credential that already worked from the address skips the
        budget, so its holder is not locked out by a guesser sharing the address.
        """
        address = self.address(scope)
        known = self._known(address, credential)
        if not known:
            await self._within_budget(address)  # spares the lookup past the budget
        found = await check()
        if found is None:
            wait_s = await self.limiter.take(
                f"fail:{address}", self.max_failures, self.failure_window_s
            )
            if wait_s:
                raise TooManyRequests(wait_s, _TOO_MANY_FAILURES)
            return None
        if not known:
            await self._within_budget(address)
        self.succeeded(address, credential)
        return found

    async def _within_budget(self, address: str) -> None:
        failures = await self.limiter.count(f"fail:{address}", self.failure_window_s)
        if failures >= self.max_failures:
            wait_s = retry_after_s(time.time(), self.failure_window_s)
            raise TooManyRequests(wait_s, _TOO_MANY_FAILURES)

    def succeeded(self, address: str, credential: bytes) -> None:
        """Remember that ``credential`` works from ``address`` (for one failure window)."""
        good = self._good.get(address)
        if good is None:
            if len(self._good) >= MAX_REMEMBERED_ADDRESSES:
                self._good.clear()
            good = self._good[address] = {}
        if len(good) >= MAX_REMEMBERED_PER_ADDRESS and credential.hex() not in good:
            good.clear()
        good[credential.hex()] = time.monotonic() + self.failure_window_s

    async def close(self) -> None:
        await self.limiter.close()
