"""The schema's migrations: one folder of numbered SQL scripts per engine."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any


def pending_migrations(engine: str, current: int, target: int | None) -> list[tuple[int, str, str]]:
    """The migrations after version ``current``, up to ``target`` (all when None)."""
    return [m for m in migrations(engine) if m[0] > current and (target is None or m[0] <= target)]


def migrations(engine: str) -> list[tuple[int, str, str]]:
    """``(version, file name, script)`` of an engine's migrations, in order, gap-free."""
    folder = resources.files("birdbalance.storage") / "migrations" / engine
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            found.append((int(item.name.split("_", 1)[0]), item.name, item.read_text("utf-8")))
    found.sort()
    assert [v for v, _, _ in found] == list(range(1, len(found) + 1)), "migration gap"
    return found


def statements(script: str, complete: Any) -> Iterator[str]:
    """Split a migration script into statements with the engine's completeness test."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if complete(buffer):
            yield buffer
            buffer = ""
    assert not buffer.strip() or buffer.strip().startswith("--"), "unterminated statement"
