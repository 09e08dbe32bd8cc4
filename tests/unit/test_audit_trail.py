"""The audit trail's batching: waited-for records commit at once, the rest share commits,
and nothing queued is lost at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from birdbalance.errors import ServiceUnavailable
from birdbalance.records import AuditRecord
from birdbalance.runtime import audit_trail as access
from birdbalance.runtime.audit_trail import AUDIT_LINGER_S, AuditTrail


class _Store:
    def __init__(self) -> None:
        self.commits: list[list[str]] = []

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        self.commits.append([r.action for r in records])


async def _write(fn: Callable[[], Any]) -> Any:
    return fn()


def _record(action: str) -> AuditRecord:
    return AuditRecord("admin-token", action, None, "127.0.0.1", 200, {})


def test_batching_and_shutdown() -> None:
    async def run() -> list[list[str]]:
        store = _Store()
        trail = AuditTrail(store, _write)  # type: ignore[arg-type]
        for n in range(5):
            await trail.record(_record(f"entry-{n}"))
        # The five linger into one batch; wait for its commit (not a fixed sleep, which a
        # loaded machine outran: the batch was still being written when "urgent" came).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not store.commits and loop.time() < deadline:
            await asyncio.sleep(AUDIT_LINGER_S)
        started = loop.time()
        await trail.written(_record("urgent"))
        assert loop.time() - started < AUDIT_LINGER_S  # no lingering for a waiter
        await trail.record(_record("last"))
        await trail.close()
        return store.commits

    commits = asyncio.run(run())
    assert commits == [[f"entry-{n}" for n in range(5)], ["urgent"], ["last"]]


class _FlakyStore(_Store):
    """Refuses every commit until ``healthy_at`` (loop time), as a locked database does."""

    def __init__(self, refusals: int = 0, *, forever: bool = False) -> None:
        super().__init__()
        self.refusals = refusals
        self.forever = forever
        self.tries = 0

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        self.tries += 1
        if self.forever or self.tries <= self.refusals:
            raise OSError("database is locked")
        super().append_audit(records)


def test_a_failing_commit_is_retried_until_it_commits_and_nothing_is_dropped() -> None:
    async def run() -> _FlakyStore:
        store = _FlakyStore(refusals=4)
        trail = AuditTrail(store, _write)  # type: ignore[arg-type]
        for n in range(3):
            await trail.record(_record(f"entry-{n}"))
        await trail.written(_record("urgent"))  # waits through the retries
        await trail.close()
        return store

    store = asyncio.run(run())
    assert store.tries == 5 + (len(store.commits) - 1)
    written = [action for commit in store.commits for action in commit]
    assert written == ["entry-0", "entry-1", "entry-2", "urgent"]


def test_a_waiter_gives_up_with_503_and_the_record_is_still_written() -> None:
    async def run() -> _FlakyStore:
        store = _FlakyStore(refusals=6)
        trail = AuditTrail(store, _write, wait_timeout_s=0.05)  # type: ignore[arg-type]
        with pytest.raises(ServiceUnavailable):
            await trail.written(_record("urgent"))
        while not store.commits:
            await asyncio.sleep(0.05)
        await trail.close()
        return store

    store = asyncio.run(run())
    assert store.commits == [["urgent"]] and store.tries == 7


def test_at_shutdown_what_cannot_be_written_is_logged_in_full(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(access, "AUDIT_SHUTDOWN_S", 0.2)

    async def run() -> None:
        trail = AuditTrail(_FlakyStore(forever=True), _write)  # type: ignore[arg-type]
        await trail.record(_record("entry-lost"))
        await asyncio.sleep(AUDIT_LINGER_S * 2)  # taken into a batch, failing
        await trail.record(_record("entry-queued"))
        await trail.close()

    with caplog.at_level(logging.ERROR, logger="birdbalance.audit"):
        asyncio.run(run())
    lost = [r.getMessage() for r in caplog.records if "not written at shutdown" in r.getMessage()]
    assert len(lost) == 2 and '"action":"entry-lost"' in lost[0] and "entry-queued" in lost[1]


def test_an_entrys_record_takes_its_answers_status_and_outcome() -> None:
    from birdbalance.errors import InternalError, NotEnoughBalance
    from birdbalance.storage.audit import entry_audit

    asked = AuditRecord("admin-token", "POST", "/v1/x", None, 0, {"idempotency_key": "k"})
    posted = SimpleNamespace(replayed=False)
    replayed = SimpleNamespace(replayed=True)
    answers = [(posted, 201, "posted"), (replayed, 201, "replayed")]
    answers += [(NotEnoughBalance("no"), 422, "refused"), (InternalError(), 500, "failed")]
    for answer, status, outcome in answers:
        record = entry_audit(asked, answer)  # type: ignore[arg-type]
        assert (record.status, record.detail) == (
            status,
            {"idempotency_key": "k", "outcome": outcome},
        )
    assert asked.detail == {"idempotency_key": "k"}  # the request's own record is unchanged
