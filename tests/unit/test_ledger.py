from __future__ import annotations

import pytest

from birdbalance.errors import InvalidParameter, NotEnoughBalance
from birdbalance.ledger import (
    EntryFact,
    EntryKind,
    LedgerState,
    Payment,
    RefundTarget,
    audit_ledger,
    next_balance,
)
from birdbalance.money import MAX_BALANCE_MINOR

PREPAID = Payment.PREPAID
POSTPAID = Payment.POSTPAID


def test_topup_and_charge_move_the_balance() -> None:
    state = LedgerState(PREPAID, 100)
    assert next_balance(state, EntryKind.TOPUP, 50) == 150
    assert next_balance(state, EntryKind.CHARGE, 100) == 0


def test_prepaid_never_goes_below_zero() -> None:
    with pytest.raises(NotEnoughBalance) as caught:
        next_balance(LedgerState(PREPAID, 100), EntryKind.CHARGE, 101)
    assert caught.value.code == 25 and caught.value.status_code == 422
    with pytest.raises(NotEnoughBalance):
        next_balance(LedgerState(PREPAID, 100), EntryKind.ADJUSTMENT, -101)


def test_postpaid_accumulates_usage_up_to_its_credit_limit() -> None:
    assert next_balance(LedgerState(POSTPAID, 0), EntryKind.CHARGE, 10**12) == -(10**12)
    limited = LedgerState(POSTPAID, -900, credit_limit_minor=1000)
    assert next_balance(limited, EntryKind.CHARGE, 100) == -1000
    with pytest.raises(NotEnoughBalance, match="Credit limit"):
        next_balance(limited, EntryKind.CHARGE, 101)


@pytest.mark.parametrize("kind", [EntryKind.TOPUP, EntryKind.CHARGE, EntryKind.REFUND])
@pytest.mark.parametrize("amount", [0, -1])
def test_magnitudes_must_be_positive(kind: EntryKind, amount: int) -> None:
    with pytest.raises(InvalidParameter):
        next_balance(LedgerState(PREPAID, 10), kind, amount)


def test_adjustments_are_signed_and_never_zero() -> None:
    state = LedgerState(PREPAID, 10)
    assert next_balance(state, EntryKind.ADJUSTMENT, -10) == 0
    assert next_balance(state, EntryKind.ADJUSTMENT, 5) == 15
    with pytest.raises(InvalidParameter):
        next_balance(state, EntryKind.ADJUSTMENT, 0)


def test_refunds_never_exceed_the_charge() -> None:
    state = LedgerState(PREPAID, 0)
    charge = RefundTarget(EntryKind.CHARGE, amount_minor=-100, refunded_minor=60)
    assert next_balance(state, EntryKind.REFUND, 40, refund_target=charge) == 40
    with pytest.raises(InvalidParameter, match=r"0\.00004 is left"):
        next_balance(state, EntryKind.REFUND, 41, refund_target=charge)


def test_refund_must_name_a_charge() -> None:
    state = LedgerState(PREPAID, 0)
    with pytest.raises(InvalidParameter):
        next_balance(state, EntryKind.REFUND, 1)
    topup = RefundTarget(EntryKind.TOPUP, amount_minor=100, refunded_minor=0)
    with pytest.raises(InvalidParameter, match="only a charge"):
        next_balance(state, EntryKind.REFUND, 1, refund_target=topup)


def test_balance_is_bounded() -> None:
    with pytest.raises(InvalidParameter):
        next_balance(LedgerState(PREPAID, MAX_BALANCE_MINOR), EntryKind.TOPUP, 1)


def _facts(*rows: tuple[int, str, int, int]) -> list[EntryFact]:
    return [EntryFact(seq, EntryKind(kind), amount, after) for seq, kind, amount, after in rows]


def test_audit_accepts_a_sound_ledger() -> None:
    facts = _facts((1, "topup", 100, 100), (2, "charge", -30, 70), (3, "refund", 10, 80))
    assert audit_ledger(facts, 80, 3, PREPAID) == []


@pytest.mark.parametrize(
    ("facts", "balance", "seq", "needle"),
    [
        (_facts((1, "topup", 100, 100), (2, "charge", -30, 71)), 71, 2, "previous balance"),
        (_facts((1, "topup", 100, 100), (3, "charge", -30, 70)), 70, 3, "expected seq 2"),
        (_facts((1, "topup", 100, 100)), 90, 1, "entries sum to 100"),
        (_facts((1, "topup", 100, 100)), 100, 2, "stored seq 2"),
        (_facts((1, "adjustment", -5, -5)), -5, 1, "below zero"),
    ],
)
def test_audit_finds_every_kind_of_mismatch(
    facts: list[EntryFact], balance: int, seq: int, needle: str
) -> None:
    problems = audit_ledger(facts, balance, seq, PREPAID)
    assert any(needle in p for p in problems), problems
