from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from birdbalance.errors import InvalidParameter, NotEnoughBalance
from birdbalance.ledger import (
    MAX_DAY_TURNOVER_MINOR,
    MAX_HELD_MINOR,
    DayTurnover,
    EntryFact,
    EntryKind,
    LedgerState,
    Payment,
    RefundTarget,
    audit_ledger,
    next_balance,
    reserve,
    turnover_after,
)
from birdbalance.money import MAX_BALANCE_MINOR, MAX_ENTRY_MINOR

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


def test_a_days_turnover_is_bounded_each_way_and_starts_over_each_day() -> None:
    day = DayTurnover("2026-11-28", MAX_DAY_TURNOVER_MINOR - 5, 7)
    assert turnover_after(day, "2026-11-28", 5) == DayTurnover(
        "2026-11-28", MAX_DAY_TURNOVER_MINOR, 7
    )
    with pytest.raises(InvalidParameter) as refused:
        turnover_after(day, "2026-11-28", 6)
    assert refused.value.parameter == "amount" and "one UTC day" in refused.value.description
    assert turnover_after(day, "2026-11-28", -3) == DayTurnover("2026-11-28", day.in_minor, 10)
    assert turnover_after(day, "2026-11-29", 6) == DayTurnover("2026-11-29", 6, 0)


def test_pending_holds_are_bounded_without_a_credit_limit() -> None:
    state = LedgerState(POSTPAID, 0, None, MAX_HELD_MINOR - 10)
    assert reserve(state, 10) == MAX_HELD_MINOR
    with pytest.raises(InvalidParameter):
        reserve(state, 11)


AMOUNTS = st.integers(1, MAX_ENTRY_MINOR)
OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["topup", "charge", "adjust", "hold", "next day"]), AMOUNTS),
    max_size=60,
)


@given(
    payment=st.sampled_from([PREPAID, POSTPAID]),
    limit=st.none() | AMOUNTS,
    start=st.integers(0, MAX_BALANCE_MINOR),
    held=st.integers(0, MAX_HELD_MINOR),
    ops=OPERATIONS,
)
def test_no_accepted_sequence_leaves_the_bounds(
    payment: Payment, limit: int | None, start: int, held: int, ops: list[tuple[str, int]]
) -> None:
    """From any state within the bounds, accepted writes keep every stored value within
    them (and so within int64): the balance, what holds reserve, what is available, and
    the day's turnover each way. Refused writes change nothing."""
    state = LedgerState(payment, start, limit if payment is POSTPAID else None, 0)
    if payment is POSTPAID or held <= start:
        state = LedgerState(payment, start, state.credit_limit_minor, held)
    turnover = DayTurnover("2026-01-01")
    day = 1
    for op, amount in ops:
        try:
            if op == "next day":
                day += 1
                continue
            if op == "hold":
                state = LedgerState(
                    payment, state.balance_minor, state.credit_limit_minor, reserve(state, amount)
                )
                continue
            kind = {"topup": EntryKind.TOPUP, "charge": EntryKind.CHARGE}.get(
                op, EntryKind.ADJUSTMENT
            )
            signed = amount if kind is not EntryKind.ADJUSTMENT or amount % 2 else -amount
            after = next_balance(state, kind, signed if kind is EntryKind.ADJUSTMENT else amount)
            turnover = turnover_after(turnover, f"2026-01-{day:02d}", after - state.balance_minor)
            state = LedgerState(payment, after, state.credit_limit_minor, state.held_minor)
        except (InvalidParameter, NotEnoughBalance):
            continue
        assert -MAX_BALANCE_MINOR <= state.balance_minor <= MAX_BALANCE_MINOR
        assert 0 <= state.held_minor <= MAX_HELD_MINOR
        assert -(2**63) < state.available_minor < 2**63
        assert 0 <= turnover.in_minor <= MAX_DAY_TURNOVER_MINOR
        assert 0 <= turnover.out_minor <= MAX_DAY_TURNOVER_MINOR
