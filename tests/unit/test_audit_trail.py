"""The audit trail's batching: waited-for records commit at once, the rest share commits,
and nothing queued is lost at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from birdbalance.http.access import AUDIT_LINGER_S, AuditTrail
from birdbalance.records import AuditRecord


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
        await asyncio.sleep(AUDIT_LINGER_S * 3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await trail.written(_record("urgent"))
        assert loop.time() - started < AUDIT_LINGER_S  # no lingering for a waiter
        await trail.record(_record("last"))
        await trail.close()
        return store.commits

    commits = asyncio.run(run())
    assert commits == [[f"entry-{n}" for n in range(5)], ["urgent"], ["last"]]
