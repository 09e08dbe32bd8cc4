"""A Hypothesis state machine drives the service on each engine against a model.

Rules: prepaid never below zero, postpaid never past its credit limit, counting what
holds reserve; refunds never exceed their charge; captures never exceed their hold; one
Idempotency-Key never writes twice (and conflicts on another request). After every step
the stored balances and holds equal the model's, and `verify` stays clean.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from birdbalance.errors import (
    IdempotencyConflict,
    InvalidParameter,
    NotEnoughBalance,
    StateConflict,
)
from birdbalance.ledger import EntryKind
from birdbalance.money import format_amount, parse_amount
from birdbalance.service import Service
from birdbalance.settings import Settings
from birdbalance.shapes import render
from birdbalance.storage import Store, open_store

CREDIT_LIMIT = "5"
amounts = st.integers(min_value=1, max_value=3_000_000).map(format_amount)


class LedgerMachine(RuleBasedStateMachine):
    """One example: two new accounts in a shared database, driven through the service."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.run = uuid.uuid4().hex[:12]  # keys of different examples never meet

    @initialize()
    def open_ledgers(self) -> None:
        self.service = Service(self.store)
        prepaid = render(self.service.create_account({"payment": "prepaid", "type": "euros"}, None))
        postpaid = render(
            self.service.create_account(
                {"payment": "postpaid", "type": "credits", "credit_limit": CREDIT_LIMIT}, None
            )
        )
        self.accounts = {"prepaid": prepaid["id"], "postpaid": postpaid["id"]}
        self.balance = {"prepaid": 0, "postpaid": 0}
        self.floor = {"prepaid": 0, "postpaid": -parse_amount(CREDIT_LIMIT)}
        self.charges: dict[str, list[int]] = {}  # entry id -> [charged, refunded]
        self.charge_account: dict[str, str] = {}
        self.sent: dict[str, tuple[str, str, str, dict[str, str]]] = {}
        self.answers: dict[str, dict[str, object]] = {}
        self.held = {"prepaid": 0, "postpaid": 0}
        self.holds: dict[str, tuple[str, int]] = {}  # pending hold id -> (which, amount)
        self.n = 0

    def _key(self) -> str:
        self.n += 1
        return f"{self.run}-{self.n}"

    def _available(self, which: str) -> int:
        return self.balance[which] - self.held[which]

    def _post(self, which: str, kind: EntryKind, body: dict[str, str]) -> dict[str, object] | None:
        key = self._key()
        try:
            answer = render(self.service.post_entry(self.accounts[which], kind, body, key))
        except (NotEnoughBalance, InvalidParameter):
            return None
        self.sent[key] = (which, kind.value, self.accounts[which], body)
        self.answers[key] = answer
        return answer

    @rule(which=st.sampled_from(["prepaid", "postpaid"]), amount=amounts)
    def topup(self, which: str, amount: str) -> None:
        assert self._post(which, EntryKind.TOPUP, {"amount": amount}) is not None
        self.balance[which] += parse_amount(amount)

    @rule(which=st.sampled_from(["prepaid", "postpaid"]), amount=amounts)
    def charge(self, which: str, amount: str) -> None:
        minor = parse_amount(amount)
        allowed = self._available(which) - minor >= self.floor[which]
        answer = self._post(which, EntryKind.CHARGE, {"amount": amount})
        assert (answer is not None) == allowed
        if answer is not None:
            self.balance[which] -= minor
            entry = answer["entry"]
            assert isinstance(entry, dict)
            self.charges[entry["id"]] = [minor, 0]
            self.charge_account[entry["id"]] = which

    @precondition(lambda self: bool(self.charges))
    @rule(data=st.data(), amount=amounts)
    def refund(self, data: st.DataObject, amount: str) -> None:
        charge_id = data.draw(st.sampled_from(list(self.charges)))
        which = self.charge_account[charge_id]
        charged, refunded = self.charges[charge_id]
        minor = parse_amount(amount)
        answer = self._post(which, EntryKind.REFUND, {"amount": amount, "charge": charge_id})
        assert (answer is not None) == (refunded + minor <= charged)
        if answer is not None:
            self.charges[charge_id][1] += minor
            self.balance[which] += minor

    @rule(which=st.sampled_from(["prepaid", "postpaid"]), amount=amounts)
    def hold(self, which: str, amount: str) -> None:
        minor = parse_amount(amount)
        allowed = self._available(which) - minor >= self.floor[which]
        try:
            answer = render(
                self.service.create_hold(self.accounts[which], {"amount": amount}, self._key())
            )
        except NotEnoughBalance:
            assert not allowed
            return
        assert allowed
        self.holds[answer["hold"]["id"]] = (which, minor)
        self.held[which] += minor

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), part=st.integers(min_value=0, max_value=4))
    def capture(self, data: st.DataObject, part: int) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.holds)))
        which, reserved = self.holds[hold_id]
        # part 0 captures all of it; otherwise a share, or more than the hold (refused).
        wanted = None if part == 0 else reserved * part // 3 or 1
        body = {} if wanted is None else {"amount": format_amount(wanted)}
        try:
            answer = render(self.service.capture_hold(hold_id, body, self._key()))
        except InvalidParameter:
            assert wanted is not None and wanted > reserved
            return
        captured = reserved if wanted is None else wanted
        assert captured <= reserved
        assert answer["hold"]["captured"] == format_amount(captured)
        del self.holds[hold_id]
        self.held[which] -= reserved
        self.balance[which] -= captured
        entry = answer["entry"]
        self.charges[entry["id"]] = [captured, 0]
        self.charge_account[entry["id"]] = which

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.holds)))
        which, reserved = self.holds.pop(hold_id)
        assert (
            render(self.service.void_hold(hold_id, {}, self._key()))["hold"]["status"] == "voided"
        )
        self.held[which] -= reserved
        try:
            render(self.service.void_hold(hold_id, {}, self._key()))
        except StateConflict:
            return
        raise AssertionError("a resolved hold must not be voided again")

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(list(self.sent)))
        _, kind, account_id, body = self.sent[key]
        again = render(self.service.post_entry(account_id, EntryKind(kind), body, key))
        assert again == self.answers[key]

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def conflicting_reuse(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(list(self.sent)))
        _, kind, account_id, body = self.sent[key]
        changed = {**body, "amount": format_amount(parse_amount(body["amount"]) + 1)}
        try:
            render(self.service.post_entry(account_id, EntryKind(kind), changed, key))
        except IdempotencyConflict:
            return
        raise AssertionError("a reused key with another body must conflict")

    @invariant()
    def balances_match_the_model(self) -> None:
        if not hasattr(self, "accounts"):
            return
        for which, account_id in self.accounts.items():
            stored = self.store.get_account(account_id).live
            assert (stored.balance_minor, stored.held_minor) == (
                self.balance[which],
                self.held[which],
            )
            assert stored.balance_minor - stored.held_minor >= self.floor[which]

    @invariant()
    def verify_is_clean(self) -> None:
        if hasattr(self, "accounts"):
            assert self.store.verify() == []


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(Settings(database_url=database_url, sqlite_synchronous="NORMAL"))
    s.migrate()
    yield s
    s.close()


def test_the_ledger_rules_hold(store: Store) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(store),
        settings=settings(max_examples=40, stateful_step_count=30, deadline=None),
    )
