"""Threshold ranges as the Monitoring Plugins development guidelines define them (pure).

``start:end`` alerts when a value is outside ``[start, end]``; ``start`` may be ``~``
(no lower end) and ``end`` may be left out (no upper end); a leading ``@`` turns it
around: alert when the value is inside ``[start, end]``, both ends included. So ``20:``
alerts below 20, ``~:10`` above 10, ``10:20`` outside 10..20 and ``@10:20`` inside it.

One deviation, kept on purpose: a bare number. The guidelines read ``10`` as ``0:10``
(alert below 0 or above 10), which for a balance would warn about a healthy account and
never about an empty one; ``birdbalance check`` has always read ``-w 20`` as "warn below
20", and still does: a bare ``N`` is ``N:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from birdbalance.errors import RangeError as RangeError
from birdbalance.money import decimal_text

_NUMBER: Final = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_RANGE: Final = re.compile(rf"(?P<at>@)?(?:(?P<start>~|{_NUMBER}):)?(?P<end>{_NUMBER})?")
#: Longest threshold text read (digits beyond make no sense for a balance).
MAX_RANGE_CHARS: Final = 64


@dataclass(frozen=True, slots=True)
class Range:
    """``[start, end]`` (None: unbounded on that side); ``inside``: alert inside it."""

    start: Decimal | None
    end: Decimal | None
    inside: bool = False
    text: str = ""

    def alerts(self, value: Decimal) -> bool:
        """Whether ``value`` raises this threshold's alert."""
        within = (self.start is None or value >= self.start) and (
            self.end is None or value <= self.end
        )
        return within if self.inside else not within

    @classmethod
    def at_least(cls, value: Decimal) -> Range:
        """``value:``: alert below ``value`` (what a bare number means here)."""
        return cls(value, None, text=f"{decimal_text(value)}:")

    def why(self) -> str:
        """What an alert of this range means, in words for the plugin's line."""
        if not self.inside and self.end is None and self.start is not None:
            return f"below {decimal_text(self.start)}"
        if not self.inside and self.start is None and self.end is not None:
            return f"above {decimal_text(self.end)}"
        return f"{'inside' if self.inside else 'outside'} {self.text}"


def parse_range(text: str) -> Range:
    """A threshold range (see the module's docstring), or ``RangeError``."""
    text = text.strip()
    if not text or len(text) > MAX_RANGE_CHARS:
        raise RangeError(f"{text[:MAX_RANGE_CHARS]!r} is not a threshold range")
    match = _RANGE.fullmatch(text)
    if match is None or (match["start"] is None and match["end"] is None):
        raise RangeError(f"{text!r} is not a threshold range (such as 20:, ~:10 or @10:20)")
    try:
        end = None if match["end"] is None else Decimal(match["end"])
        if match["start"] is None:
            # A bare number: "at least N" for a balance (see the module's docstring).
            assert end is not None
            if match["at"]:
                return Range(Decimal(0), end, inside=True, text=text)
            return Range.at_least(end)
        start = None if match["start"] == "~" else Decimal(match["start"])
    except InvalidOperation:
        raise RangeError(f"{text!r} is not a threshold range") from None
    if start is not None and end is not None and start > end:
        raise RangeError(f"{text!r}: the start of a range must not be above its end")
    return Range(start, end, inside=bool(match["at"]), text=text)
