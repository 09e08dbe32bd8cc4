"""Counters the worker processes of one node share, so ``/metrics`` reports the node.

Each process writes its own file in a directory the node's processes share (made by
``birdbalance serve`` for the run), through a memory map: an increment is one store of
8 bytes in place, with no lock and no system call. A scrape, answered by any one worker,
reads every file of the directory and adds them up. A worker that exits (or is restarted
by the server) leaves its file, so a node's counts never go backwards while it runs.

File layout, little-endian: an 8-byte header holding the bytes in use, then records of
``[4-byte key length][key, UTF-8, padded to 8 bytes][8-byte float64 value]``. A record
is complete before the header counts it, so a reader never sees half of one; each value
is one aligned 8-byte store, which a reader sees whole.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Final

#: Size a file starts at, and the most it may grow to (past it, new keys are not shared:
#: the metrics above already bound their series).
INITIAL_BYTES: Final = 64 * 1024
MAX_BYTES: Final = 16 * 1024 * 1024
#: Files a scrape reads at most (workers, and the ones they replaced).
MAX_FILES: Final = 256
SUFFIX: Final = ".counters"
_HEADER: Final = struct.Struct("<Q")
_LENGTH: Final = struct.Struct("<I")
_VALUE: Final = struct.Struct("<d")

Key = tuple[str, ...]


def _padded(size: int) -> int:
    return (size + 7) // 8 * 8


class SharedCounters:
    """This process's counters in ``directory``, and the sum of every process's."""

    def __init__(self, directory: Path, name: str | None = None) -> None:
        self._directory = directory
        # One file per process (``name`` only for tests that play several processes).
        self._path = directory / f"{name or os.getpid()}{SUFFIX}"
        self._offsets: dict[Key, int] = {}
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._size = INITIAL_BYTES
        os.ftruncate(self._fd, self._size)
        self._map = mmap.mmap(self._fd, self._size)
        self._used = _HEADER.size
        _HEADER.pack_into(self._map, 0, self._used)

    def slot(self, key: Key) -> int | None:
        """Where ``key``'s value lives in this process's file (made at 0 the first time);
        None once the file is full."""
        offset = self._offsets.get(key)
        return offset if offset is not None else self._append(key)

    def store(self, slot: int, value: float) -> None:
        """Set a slot's value: this process's total for its key (one 8-byte store)."""
        _VALUE.pack_into(self._map, slot, value)

    def _append(self, key: Key) -> int | None:
        encoded = json.dumps(key, separators=(",", ":")).encode("utf-8")
        record = _padded(_LENGTH.size + len(encoded))  # the value stays 8-byte aligned
        needed = self._used + record + _VALUE.size
        if needed > self._size:
            if needed > MAX_BYTES:
                return None
            self._grow(max(needed, self._size * 2))
        start = self._used
        _LENGTH.pack_into(self._map, start, len(encoded))
        self._map[start + _LENGTH.size : start + _LENGTH.size + len(encoded)] = encoded
        offset = start + record
        _VALUE.pack_into(self._map, offset, 0.0)
        self._offsets[key] = offset
        # Only now does the header count the record: readers never see half of it.
        self._used = offset + _VALUE.size
        _HEADER.pack_into(self._map, 0, self._used)
        return offset

    def _grow(self, size: int) -> None:
        size = min(MAX_BYTES, size)
        os.ftruncate(self._fd, size)
        self._map.close()
        self._map = mmap.mmap(self._fd, size)
        self._size = size

    def total(self) -> dict[Key, float]:
        """Every key's value added up over the directory's files (this process's too)."""
        merged: dict[Key, float] = {}
        for key, value in self._read_all():
            merged[key] = merged.get(key, 0.0) + value
        return merged

    def _read_all(self) -> Iterator[tuple[Key, float]]:
        files = sorted(self._directory.glob("*" + SUFFIX))[:MAX_FILES]
        for path in files:
            try:
                data = path.read_bytes()[:MAX_BYTES]
            except OSError:
                continue  # a file going away as the node stops
            yield from _records(data)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


def _records(data: bytes) -> Iterator[tuple[Key, float]]:
    if len(data) < _HEADER.size:
        return
    (used,) = _HEADER.unpack_from(data, 0)
    used = min(used, len(data))
    position = _HEADER.size
    while position + _LENGTH.size <= used:
        (length,) = _LENGTH.unpack_from(data, position)
        record = _padded(_LENGTH.size + length)
        if position + record + _VALUE.size > used:
            return
        raw = data[position + _LENGTH.size : position + _LENGTH.size + length]
        try:
            key = tuple(str(part) for part in json.loads(raw))
        except ValueError:
            return  # not a file of ours, or damaged: stop reading it
        (value,) = _VALUE.unpack_from(data, position + record)
        yield key, value
        position += record + _VALUE.size
