"""Amounts as the watcher compares and remembers them: exact integers at a fixed scale."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

from birdbalance.errors import WatchError

#: Decimal places the watcher compares amounts at (MessageBird's amounts have fewer).
SCALE: Final = 6
#: Largest balance (either sign, asset units) taken as a reading: MessageBird's amounts
#: are far below; a larger one is a broken or hostile answer, not money.
MAX_AMOUNT: Final = Decimal(10) ** 15
#: Characters of an amount's text read back from the state file.
MAX_AMOUNT_CHARS: Final = 40


def to_minor(amount: Decimal) -> int:
    """An amount as an integer at :data:`SCALE` places (exact, or :class:`WatchError`)."""
    if not amount.is_finite() or amount.copy_abs() > MAX_AMOUNT:  # exact, cannot overflow
        raise WatchError(f"{amount:.6g} is outside what the watcher takes (|amount| <= 10^15)")
    scaled = amount.scaleb(SCALE)
    if scaled != scaled.to_integral_value():
        raise WatchError(f"{amount} has more than {SCALE} decimal places")
    return int(scaled)


def parse_amount(text: str) -> Decimal:
    """An amount written by the watcher itself (its state file); :class:`WatchError` else."""
    if len(text) > MAX_AMOUNT_CHARS:
        raise WatchError(f"an amount longer than {MAX_AMOUNT_CHARS} characters")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise WatchError(f"{text!r} is not an amount") from None
    to_minor(amount)
    return amount
