"""Identifiers and timestamps.

Ids are a type prefix and a ULID (48-bit millisecond time, 80 random bits, Crockford
base32), so they sort by creation time, which cursor pagination relies on. Within one
process they are monotonic: ids made in the same millisecond still sort in order.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Final

from birdbalance.timestamps import now_text

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Every pair of digits, by the 10 bits it writes; and where each pair's bits start.
_PAIRS: Final = tuple(high + low for high in _CROCKFORD for low in _CROCKFORD)
_SHIFTS: Final = tuple(range(120, -1, -10))


_lock = threading.Lock()
_last = 0


def _next_value() -> int:
    """A ULID value greater than every one this process made before (monotonic ULID)."""
    global _last
    with _lock:
        value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
        if value <= _last:
            # Same millisecond (or the clock stepped back): count up from the last one,
            # so ids made one after another in a process sort in that order.
            value = _last + 1
        _last = value
        return value


def new_id(prefix: str) -> str:
    """A new id such as ``acc_01JD3Z8Q6W6B7Y2M0N4R5T8V9X``.

    Within a process, each id sorts after the one made before it.
    """
    return f"{prefix}_{crockford(_next_value())}"


def crockford(value: int) -> str:
    """A 128-bit value as 26 Crockford base-32 digits, most significant first."""
    assert 0 <= value < 1 << 128
    # Two digits at a time: every id of every write is made here.
    return "".join([_PAIRS[(value >> shift) & 0x3FF] for shift in _SHIFTS])


def utc_timestamp() -> str:
    """Now (by the process's steady clock), as RFC 3339 UTC with microseconds."""
    return now_text()
