"""Webhook delivery: each process claims due deliveries from the outbox and sends them.

Claims are leased (the delivery's next attempt moves past this attempt's deadline), so
several nodes never send the same delivery at once, and a node that dies mid-attempt
leaves it to be retried. The claim itself counts the attempt and says on the delivery
that no result came back yet: a delivery is never sent again without its previous
attempt on record, whatever stopped that attempt (a crash, a lost write).

A delivery leaves as soon as it is due. The commit that raises it wakes this process's
deliverer (:meth:`Deliverer.wake`, called by the write queue), and on PostgreSQL a
``NOTIFY`` in that transaction wakes every other process. Polling every
``webhook_poll_interval_s`` stays as the fallback for what no wake announces: retries
coming due, another process's commit on SQLite, a lost listening connection.

No receiver can delay another. Each delivery runs as a task of its own in one of
:data:`MAX_IN_FLIGHT` slots, at most :data:`MAX_IN_FLIGHT_PER_WEBHOOK` of them for one
subscription, and a slot is refilled as soon as it frees, never at the end of a round.
Every attempt has one deadline covering connect, send and the whole answer; at most
:data:`MAX_RESPONSE_BYTES` of an answer are read (undecoded), the rest is dropped with
the connection. Any failure at all, expected or not, is recorded on its own delivery
as a failed attempt with its reason, then retried with capped full-jitter exponential
backoff, then dead-lettered. Each attempt is signed afresh. Receivers deduplicate by the
event id (the body's ``id`` and the ``Birdbalance-Event-Id`` header): delivery is at
least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import httpx

from birdbalance._version import __version__
from birdbalance.ids import utc_timestamp
from birdbalance.mail import event_message, send as send_mail
from birdbalance.metrics import Metrics
from birdbalance.records import DueDelivery
from birdbalance.settings import Settings
from birdbalance.storage import Store
from birdbalance.targets import target_problem
from birdbalance.timestamps import timestamp_after
from birdbalance.webhooks import retry_delay_s, signed_headers

RunWrite = Callable[[Callable[[], Any]], Awaitable[Any]]

#: Deliveries one process sends at once.
MAX_IN_FLIGHT: Final = 32
#: Of those, at most this many to one subscription, so a slow receiver with a backlog
#: never takes every slot.
MAX_IN_FLIGHT_PER_WEBHOOK: Final = 4
#: Bytes of a receiver's answer read (as sent, never decompressed); the rest is dropped.
MAX_RESPONSE_BYTES: Final = 64 * 1024
#: Characters of a failure kept on the delivery.
MAX_ERROR_CHARS: Final = 300
#: Mail sends at once (smtplib blocks: each holds a thread of its own pool).
MAX_MAIL_THREADS: Final = 4
#: Tries to record one attempt's result, and the longest pause between them.
MAX_RECORD_TRIES: Final = 6
MAX_RECORD_BACKOFF_S: Final = 2.0
#: Shortest pause between two claims, however often the deliverer is woken.
MIN_CLAIM_GAP_S: Final = 0.002
#: A lease outlives the attempt's deadline by this much (clock skew between nodes).
LEASE_MARGIN_S: Final = 10.0

logger = logging.getLogger("birdbalance.webhooks")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt gave."""

    delivered: bool
    status: int | None = None
    error: str | None = None
    #: Never worth another attempt (a target that cannot be sent to).
    final: bool = False


def _failure(exc: BaseException) -> Outcome:
    return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])


class Deliverer:
    """Sends due deliveries until cancelled."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        run_write: RunWrite,
        metrics: Metrics | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._transport = transport
        self._store = store
        self._metrics = metrics
        self._settings = settings
        self._run_write = run_write
        # Jitter only spreads retries out; it needs no cryptographic randomness.
        self._rng = random.Random()  # noqa: S311
        self._in_flight: dict[asyncio.Task[None], str] = {}
        self._per_webhook: Counter[str] = Counter()
        self._slot_freed = asyncio.Event()
        # Set when deliveries may have become due (a commit here, a notification from
        # elsewhere, a freed slot); the loop claims at once instead of at its next poll.
        self._woken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_claim_at = 0.0
        smtp = settings.smtp
        self._mail_deadline_s = smtp.timeout_s if smtp is not None else 0.0
        self._lease_s = max(settings.webhook_timeout_s, self._mail_deadline_s) + LEASE_MARGIN_S

    def wake(self) -> None:
        """Claim due deliveries now rather than at the next poll. Safe from any thread;
        wakes that come together cost one claim."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to wake
                loop.call_soon_threadsafe(self._woken.set)

    async def run(self) -> None:
        """Claim and send until cancelled; cancelling ends the attempts in flight too."""
        self._loop = asyncio.get_running_loop()
        timeout = httpx.Timeout(self._settings.webhook_timeout_s)
        headers = {
            "User-Agent": f"birdbalance-webhooks/{__version__}",
            # The answer is read undecoded and capped: ask for it uncompressed.
            "Accept-Encoding": "identity",
        }
        limits = httpx.Limits(max_connections=MAX_IN_FLIGHT)
        mail_threads = ThreadPoolExecutor(MAX_MAIL_THREADS, thread_name_prefix="birdbalance-mail")
        try:
            async with httpx.AsyncClient(
                timeout=timeout,
                headers=headers,
                limits=limits,
                follow_redirects=False,
                transport=self._transport,
            ) as client:
                try:
                    await self._claim_forever(client, mail_threads)
                finally:
                    for task in list(self._in_flight):
                        task.cancel()
                    if self._in_flight:
                        await asyncio.gather(*self._in_flight, return_exceptions=True)
        finally:
            # A mail thread ends by its own deadline; nobody waits for it here.
            mail_threads.shutdown(wait=False, cancel_futures=True)

    async def _claim_forever(
        self, client: httpx.AsyncClient, mail_threads: ThreadPoolExecutor
    ) -> None:
        while True:
            free = MAX_IN_FLIGHT - len(self._in_flight)
            if free == 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            # A flood of wakes (a burst of crossings, a peer's NOTIFY storm) still claims
            # at most once per MIN_CLAIM_GAP_S.
            gap_s = self._last_claim_at + MIN_CLAIM_GAP_S - time.monotonic()
            if gap_s > 0:
                await asyncio.sleep(gap_s)
            self._woken.clear()  # before the claim: a wake during it claims again
            self._last_claim_at = time.monotonic()
            try:
                due = await self._claim(free)
            except Exception as exc:  # noqa: BLE001 -- the loop must outlive any failure
                logger.warning("claiming webhook deliveries failed: %s", exc)
                due = []
            for delivery in due:
                task = asyncio.create_task(
                    self._deliver(client, mail_threads, delivery),
                    name=f"birdbalance-delivery-{delivery.id}",
                )
                self._in_flight[task] = delivery.webhook_id
                self._per_webhook[delivery.webhook_id] += 1
                task.add_done_callback(self._release)
            if len(due) < free:
                # Polling stays the fallback: retries come due with no wake, and another
                # process's commit on SQLite wakes nobody here.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.webhook_poll_interval_s):
                        await self._woken.wait()

    def _release(self, task: asyncio.Task[None]) -> None:
        webhook_id = self._in_flight.pop(task)
        self._per_webhook[webhook_id] -= 1
        if self._per_webhook[webhook_id] <= 0:
            del self._per_webhook[webhook_id]
        self._slot_freed.set()
        # A freed slot may let a delivery of the same subscription go that was held back.
        self._woken.set()

    async def _claim(self, limit: int) -> list[DueDelivery]:
        claim = partial(
            self._store.claim_deliveries,
            utc_timestamp(),
            timestamp_after(self._lease_s),
            limit,
            max_attempts=self._settings.webhook_max_attempts,
            per_webhook=MAX_IN_FLIGHT_PER_WEBHOOK,
            in_flight=dict(self._per_webhook),
        )
        due: list[DueDelivery] = await self._run_write(claim)
        return due

    async def _deliver(
        self, client: httpx.AsyncClient, mail_threads: ThreadPoolExecutor, delivery: DueDelivery
    ) -> None:
        outcome = await self._attempt_within_deadline(client, mail_threads, delivery)
        await self._record(delivery, outcome)

    async def _attempt_within_deadline(
        self, client: httpx.AsyncClient, mail_threads: ThreadPoolExecutor, delivery: DueDelivery
    ) -> Outcome:
        problem = target_problem(delivery.url)
        if problem is not None:
            return Outcome(False, None, f"not sent: {problem}"[:MAX_ERROR_CHARS], final=True)
        is_mail = delivery.url.startswith("mailto:")
        deadline_s = self._mail_deadline_s if is_mail else self._settings.webhook_timeout_s
        try:
            async with asyncio.timeout(deadline_s or None):
                if is_mail:
                    return await self._mail(mail_threads, delivery)
                return await self._post(client, delivery)
        except TimeoutError:
            return Outcome(False, None, f"no complete answer within {deadline_s:g} s")
        except Exception as exc:  # noqa: BLE001 -- one delivery's failure is its own
            return _failure(exc)

    async def _post(self, client: httpx.AsyncClient, delivery: DueDelivery) -> Outcome:
        body = delivery.payload.encode("utf-8")
        event_id = str(json.loads(body)["id"])
        headers = {
            **signed_headers(body, delivery.secret, event_id),
            "Birdbalance-Delivery-Id": delivery.id,
        }
        async with client.stream("POST", delivery.url, content=body, headers=headers) as answer:
            read = 0
            # Only the status matters; the body is read (capped) so a short answer lets
            # the connection be reused, and a long one is cut off with the connection.
            async for chunk in answer.aiter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
        if 200 <= answer.status_code < 300:
            return Outcome(True, answer.status_code)
        return Outcome(False, answer.status_code, f"HTTP {answer.status_code}")

    async def _mail(self, mail_threads: ThreadPoolExecutor, delivery: DueDelivery) -> Outcome:
        smtp = self._settings.smtp
        if smtp is None:
            return Outcome(
                False, None, "SMTP is not configured (set BIRDBALANCE_SMTP_HOST and _FROM)"
            )
        body = delivery.payload.encode("utf-8")
        to = [delivery.url.removeprefix("mailto:")]
        message = event_message(json.loads(body), body, smtp.sender, to, delivery.secret)
        # smtplib blocks: a thread of the mail pool, and send() ends itself at the deadline.
        send = partial(send_mail, smtp, message, to, deadline_s=self._mail_deadline_s)
        await asyncio.get_running_loop().run_in_executor(mail_threads, send)
        return Outcome(True)

    async def _record(self, delivery: DueDelivery, outcome: Outcome) -> None:
        attempts = delivery.attempts + 1
        retry_at = None
        retrying = not (outcome.delivered or outcome.final)
        if retrying and attempts < self._settings.webhook_max_attempts:
            delay = retry_delay_s(
                attempts,
                base_s=self._settings.webhook_retry_base_s,
                cap_s=self._settings.webhook_retry_cap_s,
                rng=self._rng,
            )
            retry_at = timestamp_after(delay)
        if self._metrics is not None:
            result = "delivered" if outcome.delivered else "retrying" if retry_at else "dead"
            self._metrics.deliveries.inc(result)
        record = partial(
            self._store.record_attempt,
            delivery.id,
            attempt=attempts,
            delivered=outcome.delivered,
            status=outcome.status,
            error=outcome.error,
            retry_at=retry_at,
        )
        pause_s = 0.05
        for tries in range(1, MAX_RECORD_TRIES + 1):
            try:
                await self._run_write(record)
                return
            except Exception as exc:  # noqa: BLE001 -- the claim already counted the attempt
                if tries == MAX_RECORD_TRIES:
                    # The claim left "no result recorded" on the delivery, and its lease
                    # ends: it is retried, with this attempt counted.
                    logger.warning("recording delivery %s failed: %s", delivery.id, exc)
                    return
                await asyncio.sleep(pause_s * (0.5 + self._rng.random()))
                pause_s = min(MAX_RECORD_BACKOFF_S, pause_s * 2)
