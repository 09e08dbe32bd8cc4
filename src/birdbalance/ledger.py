"""The ledger's rules, free of I/O.

A ledger is the sequence of entries of one account in one mode (``live`` or
``test``). Each entry has a signed ``amount_minor`` and records ``balance_after_minor``;
the stored balance is the ``balance_after_minor`` of the last entry, and equals the sum of
all amounts. Storage engines load a :class:`LedgerState` inside their write transaction,
call :func:`next_balance`, and write the entry and the new balance in that same
transaction, so the limit check and the write cannot race.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from birdbalance.errors import InvalidParameter, NotEnoughBalance
from birdbalance.money import MAX_BALANCE_MINOR, MAX_ENTRY_MINOR, format_amount

#: Most one ledger may take in (credits) or pay out (debits) in one UTC day. It bounds
#: every per-day total the database keeps, so no sequence of accepted writes can
#: overflow a 64-bit column (docs/ledger.md proves it, column by column).
MAX_DAY_TURNOVER_MINOR: Final = 10**18
#: Most a ledger's pending holds may reserve together (postpaid ledgers without a credit
#: limit have no other bound on it).
MAX_HELD_MINOR: Final = MAX_BALANCE_MINOR


class Payment(StrEnum):
    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class Mode(StrEnum):
    """Which ledger of an account: live keys read ``live``, ``test_`` keys read ``test``."""

    LIVE = "live"
    TEST = "test"


class EntryKind(StrEnum):
    TOPUP = "topup"
    CHARGE = "charge"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    TRANSFER = "transfer"


#: The kinds an entry request posts to one ledger; a transfer's legs come only from
#: ``POST /v1/transfers``, in pairs.
POSTED_KINDS: Final = (
    EntryKind.TOPUP,
    EntryKind.CHARGE,
    EntryKind.REFUND,
    EntryKind.ADJUSTMENT,
)


class HoldStatus(StrEnum):
    """A hold is ``pending`` until it is captured, voided or expires; then it is final."""

    PENDING = "pending"
    CAPTURED = "captured"
    VOIDED = "voided"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class LedgerState:
    """What a write needs to know about a ledger, read inside the write's transaction."""

    payment: Payment
    balance_minor: int
    credit_limit_minor: int | None = None
    #: Reserved by pending holds: spendable by their captures only.
    held_minor: int = 0

    @property
    def available_minor(self) -> int:
        """The balance less what pending holds reserve."""
        return self.balance_minor - self.held_minor


@dataclass(frozen=True, slots=True)
class DayTurnover:
    """What a ledger took in and paid out on its last day of entries (UTC)."""

    day: str | None = None
    in_minor: int = 0
    out_minor: int = 0


def turnover_after(turnover: DayTurnover, day: str, delta_minor: int) -> DayTurnover:
    """The day's turnover once an entry of ``delta_minor`` lands on ``day`` (a
    ``YYYY-MM-DD`` no earlier than ``turnover.day``), or refuse it past
    :data:`MAX_DAY_TURNOVER_MINOR`."""
    assert turnover.day is None or day >= turnover.day, (day, turnover.day)
    base = turnover if turnover.day == day else DayTurnover(day)
    in_minor = base.in_minor + max(delta_minor, 0)
    out_minor = base.out_minor + max(-delta_minor, 0)
    if max(in_minor, out_minor) > MAX_DAY_TURNOVER_MINOR:
        raise InvalidParameter(
            f"this ledger may move at most {format_amount(MAX_DAY_TURNOVER_MINOR)} in and"
            " as much out in one UTC day (a bound that keeps every total exact); try again"
            " tomorrow",
            "amount",
        )
    return DayTurnover(day, in_minor, out_minor)


@dataclass(frozen=True, slots=True)
class RefundTarget:
    """The charge a refund names, and what has been refunded of it so far."""

    kind: EntryKind
    amount_minor: int
    refunded_minor: int


def signed_amount(kind: EntryKind, amount_minor: int) -> int:
    """The signed amount an entry of ``kind`` adds to the balance.

    Top-ups, charges and refunds are requested as positive magnitudes; adjustments and the
    legs of a transfer (the source's negative, the destination's positive) are signed
    and must not be zero.
    """
    assert abs(amount_minor) <= MAX_ENTRY_MINOR
    if kind in (EntryKind.ADJUSTMENT, EntryKind.TRANSFER):
        if amount_minor == 0:
            article = "an" if kind is EntryKind.ADJUSTMENT else "a"
            raise InvalidParameter(f"{article} {kind} must not be zero", "amount")
        return amount_minor
    if amount_minor <= 0:
        raise InvalidParameter("amount must be greater than zero", "amount")
    return -amount_minor if kind is EntryKind.CHARGE else amount_minor


def next_balance(
    state: LedgerState,
    kind: EntryKind,
    amount_minor: int,
    *,
    refund_target: RefundTarget | None = None,
) -> int:
    """Return the balance after an entry, or raise if the rules refuse it.

    - prepaid: no entry may take the balance below zero (code 25);
    - postpaid: the balance may go negative (usage) down to ``-credit_limit_minor``
      when a limit is set (code 25 past it);
    - a refund must name a charge of the same ledger, and all refunds of a charge
      together never exceed it;
    - no balance may exceed :data:`MAX_BALANCE_MINOR` in magnitude.
    """
    delta = signed_amount(kind, amount_minor)
    if kind is EntryKind.REFUND:
        _check_refund(refund_target, delta)
    else:
        assert refund_target is None
    after = state.balance_minor + delta
    if after > MAX_BALANCE_MINOR:
        raise InvalidParameter(
            f"the balance would exceed {format_amount(MAX_BALANCE_MINOR)}", "amount"
        )
    if delta < 0:
        _check_floor(state, after)
    return after


def _check_refund(target: RefundTarget | None, delta: int) -> None:
    if target is None:
        raise InvalidParameter("a refund must name the charge it refunds", "charge")
    if target.kind is not EntryKind.CHARGE:
        raise InvalidParameter("only a charge can be refunded", "charge")
    charged = -target.amount_minor
    assert charged > 0 and 0 <= target.refunded_minor <= charged
    if target.refunded_minor + delta > charged:
        left = charged - target.refunded_minor
        raise InvalidParameter(
            f"refunds would exceed the charge: {format_amount(left)} is left to refund",
            "amount",
        )


def _check_floor(state: LedgerState, after: int) -> None:
    """Refuse a debit that takes what is available (balance less holds) below the floor."""
    available_after = after - state.held_minor
    if state.payment is Payment.PREPAID:
        if available_after < 0:
            raise NotEnoughBalance(
                f"Not enough balance: {format_amount(max(state.available_minor, 0))} available"
            )
        return
    limit = state.credit_limit_minor
    if limit is not None and available_after < -limit:
        raise NotEnoughBalance(
            f"Credit limit reached: {format_amount(max(limit + state.available_minor, 0))} of "
            f"{format_amount(limit)} left"
        )
    if after < -MAX_BALANCE_MINOR:
        raise InvalidParameter(
            f"the balance would go below -{format_amount(MAX_BALANCE_MINOR)}", "amount"
        )


def reserve(state: LedgerState, amount_minor: int) -> int:
    """Return the ledger's held amount after a new hold of ``amount_minor``, or refuse.

    A hold moves no money: it sets ``amount_minor`` aside so that nothing else can spend
    it. What is available (balance less holds) must stay above the same floor as for a
    charge, so no overdraft is reachable through holds either.
    """
    assert abs(amount_minor) <= MAX_ENTRY_MINOR
    if amount_minor <= 0:
        raise InvalidParameter("amount must be greater than zero", "amount")
    _check_floor(state, state.balance_minor - amount_minor)
    held = state.held_minor + amount_minor
    if held > MAX_HELD_MINOR:
        raise InvalidParameter(
            f"this ledger's pending holds may reserve at most {format_amount(MAX_HELD_MINOR)}",
            "amount",
        )
    return held


def capture_amount(hold_amount_minor: int, requested_minor: int | None) -> int:
    """What a capture charges: all of the hold by default, or part of it, never more."""
    assert hold_amount_minor > 0
    if requested_minor is None:
        return hold_amount_minor
    if requested_minor <= 0:
        raise InvalidParameter(
            "a capture must be greater than zero (void the hold to release it)", "amount"
        )
    if requested_minor > hold_amount_minor:
        raise InvalidParameter(
            f"a capture cannot exceed its hold ({format_amount(hold_amount_minor)})", "amount"
        )
    return requested_minor


@dataclass(frozen=True, slots=True)
class EntryFact:
    """The stored facts of one entry that :func:`audit_ledger` checks."""

    seq: int
    kind: EntryKind
    amount_minor: int
    balance_after_minor: int


class LedgerAudit:
    """Checks one ledger's entries as they stream past, in ``seq`` order, in constant
    memory; :meth:`finish` compares them with the stored balance. The rules are those of
    :func:`audit_ledger`."""

    __slots__ = ("_expected_seq", "_last_after", "_prepaid", "_total", "problems")

    def __init__(self, payment: Payment) -> None:
        self.problems: list[str] = []
        self._total = 0
        self._last_after = 0
        self._expected_seq = 1
        self._prepaid = payment is Payment.PREPAID

    def add(self, seq: int, amount_minor: int, balance_after_minor: int) -> None:
        """The next entry of the ledger."""
        if seq != self._expected_seq:
            self.problems.append(f"entry seq {seq}: expected seq {self._expected_seq}")
            self._expected_seq = seq
        self._total += amount_minor
        if balance_after_minor != self._last_after + amount_minor:
            self.problems.append(
                f"entry seq {seq}: balance_after {balance_after_minor} but the "
                f"previous balance plus the amount is {self._last_after + amount_minor}"
            )
        self._last_after = balance_after_minor
        if self._prepaid and balance_after_minor < 0:
            self.problems.append(f"entry seq {seq}: prepaid balance went below zero")
        self._expected_seq += 1

    def finish(self, stored_balance_minor: int, stored_seq: int) -> list[str]:
        """Every problem found, once all entries up to ``stored_seq`` were added."""
        problems = self.problems
        last_seq = self._expected_seq - 1
        if last_seq != stored_seq:
            problems.append(f"stored seq {stored_seq} but the last entry has seq {last_seq}")
        if self._last_after != stored_balance_minor:
            problems.append(
                f"stored balance {stored_balance_minor} but the last entry records"
                f" {self._last_after}"
            )
        if self._total != stored_balance_minor:
            problems.append(
                f"stored balance {stored_balance_minor} but the entries sum to {self._total}"
            )
        return problems


def audit_ledger(
    entries: Iterable[EntryFact], stored_balance_minor: int, stored_seq: int, payment: Payment
) -> list[str]:
    """Check a ledger's entries (in ``seq`` order) against its stored balance.

    Returns a list of human-readable problems, empty when the ledger is sound: sequence
    numbers are 1..n without gaps, each ``balance_after_minor`` is the previous one plus
    the amount, a prepaid ledger never went below zero, and the last running balance
    (and the sum of amounts) equals the stored balance.
    """
    audit = LedgerAudit(payment)
    for fact in entries:
        audit.add(fact.seq, fact.amount_minor, fact.balance_after_minor)
    return audit.finish(stored_balance_minor, stored_seq)
