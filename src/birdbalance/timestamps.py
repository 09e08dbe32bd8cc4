"""RFC 3339 times as birdbalance stores them: UTC, microseconds, ``Z`` (they sort as text),
and the process's clock, which a momentary step of the system clock does not move.

Every time birdbalance stamps (entries, holds and their expiry, events, audit rows)
comes from :func:`now`, a :class:`SteadyClock`: it follows the system clock while the
two agree to within :data:`MAX_SLEW_S` (so NTP's gradual corrections pass through at
once), and otherwise keeps counting from the last agreement on the monotonic clock. A
step of the system clock is adopted only once it has lasted :data:`STEP_CONFIRM_S`: a
clock that jumps forward for a moment and back never stamps an entry in the future and
never expires a hold early.

Nodes that share a PostgreSQL database also keep to its clock: the store reads it every
:data:`REFERENCE_EVERY_S` and hands it to :func:`follow_reference`, and from then on
every stamp is clamped to within :data:`MAX_REFERENCE_SKEW_S` of it. A node whose clock
is wrong for longer than :data:`STEP_CONFIRM_S` (and so is believed) still stamps within
that bound of the database's time. docs/ledger.md has the whole model.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from birdbalance.errors import TimestampError

_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
MAX_TIMESTAMP_CHARS: Final = 40
#: After every stored time (the last moment :func:`parse_timestamp` accepts).
LAST_TIMESTAMP: Final = "9999-12-31T23:59:59.999999Z"
#: How far the system clock may move against the monotonic one and still be followed.
MAX_SLEW_S: Final = 1.0
#: How long a step of the system clock must last before it is believed.
STEP_CONFIRM_S: Final = 60.0
#: How far a stamp may be from the reference clock (the database's), either way.
MAX_REFERENCE_SKEW_S: Final = 2.0
#: How often a store reads its reference clock.
REFERENCE_EVERY_S: Final = 10.0
#: A reading of the reference clock that took longer than this is not used (its moment
#: is uncertain by half of it).
MAX_REFERENCE_ROUND_TRIP_S: Final = 0.5


class SteadyClock:
    """Wall-clock seconds that ignore momentary steps of the system clock."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._offset_s = wall() - monotonic()  # wall time = monotonic + offset
        self._step_seen_at: float | None = None
        self._reference_offset_s: float | None = None  # reference = monotonic + this

    def follow(self, reference_s: float, at_monotonic: float) -> float:
        """Keep stamps within :data:`MAX_REFERENCE_SKEW_S` of a reference clock that read
        ``reference_s`` at ``at_monotonic``; how far this clock was from it (seconds)."""
        offset_s = reference_s - at_monotonic
        with self._lock:
            self._reference_offset_s = offset_s
        mono = self._monotonic()
        return self._steady_s(mono, self._wall()) - (mono + offset_s)

    def now_s(self) -> float:
        """Seconds since the epoch: the system clock's, unless it just stepped, and never
        further than :data:`MAX_REFERENCE_SKEW_S` from the reference clock's."""
        mono = self._monotonic()
        steady = self._steady_s(mono, self._wall())
        reference_offset_s = self._reference_offset_s
        if reference_offset_s is None:
            return steady
        reference = mono + reference_offset_s
        low, high = reference - MAX_REFERENCE_SKEW_S, reference + MAX_REFERENCE_SKEW_S
        return min(max(steady, low), high)

    def _steady_s(self, mono: float, wall: float) -> float:
        with self._lock:
            steady = mono + self._offset_s
            if abs(wall - steady) <= MAX_SLEW_S:
                self._offset_s = wall - mono
                self._step_seen_at = None
                return wall
            if self._step_seen_at is None:
                self._step_seen_at = mono
            elif mono - self._step_seen_at >= STEP_CONFIRM_S:
                self._offset_s = wall - mono  # it lasted: the clock was set right
                self._step_seen_at = None
                return wall
            return steady


_CLOCK: Final = SteadyClock()


def follow_reference(reference_s: float, at_monotonic: float) -> float:
    """Keep this process's stamps near a reference clock (see :meth:`SteadyClock.follow`)."""
    return _CLOCK.follow(reference_s, at_monotonic)


def now() -> datetime:
    """Now, by the process's :class:`SteadyClock`."""
    return datetime.fromtimestamp(_CLOCK.now_s(), UTC)


#: The text of the last whole second stamped (``now_text`` builds on it): its seconds
#: since the epoch and its ``YYYY-MM-DDTHH:MM:SS``.
_last_second: tuple[int, str] = (-1, "")


def now_text() -> str:
    """Now, by the process's :class:`SteadyClock`, in the stored form.

    The same text as ``format_timestamp(now())`` in a third of its time: every write
    stamps several rows, and the date and time of day change once a second.
    """
    global _last_second
    # Rounded as datetime.fromtimestamp rounds (half to even, on the fraction alone).
    fraction, whole = math.modf(_CLOCK.now_s())
    second, micro = int(whole), round(fraction * 1_000_000)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    elif micro < 0:
        second, micro = second - 1, micro + 1_000_000
    cached_second, text = _last_second
    if second != cached_second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = (second, text)  # one assignment: safe between threads
    return f"{text}.{micro:06d}Z"


def format_timestamp(moment: datetime) -> str:
    assert moment.tzinfo is not None
    return moment.astimezone(UTC).strftime(_FORMAT)


def timestamp_after(seconds: float) -> str:
    """Now plus ``seconds``, in the stored form."""
    return format_timestamp(now() + timedelta(seconds=seconds))


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
