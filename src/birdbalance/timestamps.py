"""RFC 3339 times as birdbalance stores them: UTC, microseconds, ``Z`` (they sort as text)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
MAX_TIMESTAMP_CHARS: Final = 40


class TimestampError(ValueError):
    """Not an RFC 3339 time with a date, a time and an offset."""


def format_timestamp(moment: datetime) -> str:
    assert moment.tzinfo is not None
    return moment.astimezone(UTC).strftime(_FORMAT)


def timestamp_after(seconds: float) -> str:
    """Now plus ``seconds``, in the stored form."""
    return format_timestamp(datetime.now(UTC) + timedelta(seconds=seconds))


def parse_timestamp(text: str) -> str:
    """An RFC 3339 time (any offset) in the stored form; refuses times without an offset."""
    if len(text) > MAX_TIMESTAMP_CHARS or "T" not in text.upper():
        raise TimestampError("must be an RFC 3339 time such as 2026-11-22T10:00:00Z")
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise TimestampError("must be an RFC 3339 time such as 2026-11-22T10:00:00Z") from None
    if moment.tzinfo is None:
        raise TimestampError("needs an offset (Z or +hh:mm)")
    try:
        # An offset can carry a time at the edge of the calendar past it.
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise TimestampError("must be between 1970 and 9999 (UTC)") from None
    if not 1970 <= moment.year <= 9999:
        raise TimestampError("must be between 1970 and 9999 (UTC)")
    return format_timestamp(moment)
