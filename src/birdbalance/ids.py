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

from birdbalance.timestamps import format_timestamp, now

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


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
    value = _next_value()
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return f"{prefix}_{''.join(reversed(chars))}"


def utc_timestamp() -> str:
    """Now (by the process's steady clock), as RFC 3339 UTC with microseconds."""
    return format_timestamp(now())
