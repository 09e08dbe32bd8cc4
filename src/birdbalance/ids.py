"""Identifiers and timestamps.

Ids are a type prefix and a ULID (48-bit millisecond time, 80 random bits, Crockford
base32), so they sort by creation time, which cursor pagination relies on.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Final

from birdbalance.timestamps import format_timestamp

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str) -> str:
    """A new id such as ``acc_01JD3Z8Q6W6B7Y2M0N4R5T8V9X``."""
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return f"{prefix}_{''.join(reversed(chars))}"


def utc_timestamp() -> str:
    """Now, as RFC 3339 UTC with microseconds (sorts as text)."""
    return format_timestamp(datetime.now(UTC))
