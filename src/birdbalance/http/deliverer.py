"""Webhook delivery: each process claims due deliveries from the outbox and POSTs them.

Claims are leased (the delivery's next attempt moves past this attempt's timeout), so
several nodes never send the same delivery at once, and a node that dies mid-attempt
leaves it to be retried. Each attempt is signed afresh (a new timestamp); failures are
retried with capped full-jitter exponential backoff, then dead-lettered. Receivers
deduplicate by the event id (the body's ``id`` and the ``Birdbalance-Event-Id`` header):
delivery is at least once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final, TypeVar

import httpx

from birdbalance._version import __version__
from birdbalance.ids import utc_timestamp
from birdbalance.mail import event_message
from birdbalance.mail import send as send_mail
from birdbalance.metrics import Metrics
from birdbalance.records import DueDelivery
from birdbalance.settings import Settings
from birdbalance.storage import Store
from birdbalance.timestamps import timestamp_after
from birdbalance.webhooks import retry_delay_s, signed_headers

T = TypeVar("T")
RunWrite = Callable[[Callable[[], Any]], Awaitable[Any]]

#: Deliveries one process sends at once.
BATCH: Final = 16
#: Characters of a failure kept on the delivery.
MAX_ERROR_CHARS: Final = 300

logger = logging.getLogger("birdbalance.webhooks")


class Deliverer:
    """Sends due deliveries until cancelled."""

    def __init__(
        self, store: Store, settings: Settings, run_write: RunWrite, metrics: Metrics | None = None
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._settings = settings
        self._run_write = run_write
        # Jitter only spreads retries out; it needs no cryptographic randomness.
        self._rng = random.Random()  # noqa: S311

    async def run(self) -> None:
        timeout = httpx.Timeout(self._settings.webhook_timeout_s)
        headers = {"User-Agent": f"birdbalance-webhooks/{__version__}"}
        limits = httpx.Limits(max_connections=BATCH)
        async with httpx.AsyncClient(
            timeout=timeout, headers=headers, limits=limits, follow_redirects=False
        ) as client:
            while True:
                try:
                    sent = await self.deliver_due(client)
                except Exception as exc:  # noqa: BLE001 -- the loop must outlive any failure
                    logger.warning("webhook delivery round failed: %s", exc)
                    sent = 0
                if sent < BATCH:
                    await asyncio.sleep(self._settings.webhook_poll_interval_s)

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """One round: claim, send, record. Returns how many were attempted."""
        lease = timestamp_after(self._settings.webhook_timeout_s + 10)
        claim = partial(self._store.claim_deliveries, utc_timestamp(), lease, BATCH)
        due: list[DueDelivery] = await self._run_write(claim)
        if not due:
            return 0
        outcomes = await asyncio.gather(*(self._attempt(client, d) for d in due))
        for delivery, (delivered, status, error) in zip(due, outcomes, strict=True):
            retry_at = None
            attempts = delivery.attempts + 1
            if not delivered and attempts < self._settings.webhook_max_attempts:
                delay = retry_delay_s(
                    attempts,
                    base_s=self._settings.webhook_retry_base_s,
                    cap_s=self._settings.webhook_retry_cap_s,
                    rng=self._rng,
                )
                retry_at = timestamp_after(delay)
            if self._metrics is not None:
                outcome = "delivered" if delivered else "retrying" if retry_at else "dead"
                self._metrics.deliveries.inc(outcome)
            record = partial(
                self._store.record_attempt,
                delivery.id,
                delivered=delivered,
                status=status,
                error=error,
                retry_at=retry_at,
            )
            await self._run_write(record)
        return len(due)

    async def _attempt(
        self, client: httpx.AsyncClient, delivery: DueDelivery
    ) -> tuple[bool, int | None, str | None]:
        body = delivery.payload.encode("utf-8")
        if delivery.url.startswith("mailto:"):
            return await self._mail(delivery, body)
        event_id = str(json.loads(body)["id"])
        headers = {
            **signed_headers(body, delivery.secret, event_id),
            "Birdbalance-Delivery-Id": delivery.id,
        }
        try:
            response = await client.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        if 200 <= response.status_code < 300:
            return True, response.status_code, None
        return False, response.status_code, f"HTTP {response.status_code}"

    async def _mail(
        self, delivery: DueDelivery, body: bytes
    ) -> tuple[bool, int | None, str | None]:
        smtp = self._settings.smtp
        if smtp is None:
            return False, None, "SMTP is not configured (set BIRDBALANCE_SMTP_HOST and _FROM)"
        to = [delivery.url.removeprefix("mailto:")]
        message = event_message(json.loads(body), body, smtp.sender, to, delivery.secret)
        try:
            # smtplib blocks: a thread, bounded by the SMTP timeout.
            await asyncio.to_thread(send_mail, smtp, message, to)
        except OSError as exc:
            return False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        return True, None, None
