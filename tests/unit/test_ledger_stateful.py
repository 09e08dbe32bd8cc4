"""A Hypothesis state machine drives the service on a real SQLite file against a model.

Rules: prepaid never below zero, postpaid never past its credit limit, refunds never
exceed their charge, one Idempotency-Key never writes twice (and conflicts on another
request). After every step the stored balances equal the model's; `verify` stays clean.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from birdbalance.errors import IdempotencyConflict, InvalidParameter, NotEnoughBalance
from birdbalance.ledger import EntryKind
from birdbalance.money import format_amount, parse_amount
from birdbalance.service import Service
from birdbalance.storage.sqlite import SQLiteStore

CREDIT_LIMIT = "5"
amounts = st.integers(min_value=1, max_value=3_000_000).map(format_amount)


class LedgerMachine(RuleBasedStateMachine):
    @initialize()
    def open_ledgers(self) -> None:
        self.folder = tempfile.TemporaryDirectory()
        self.store = SQLiteStore(Path(self.folder.name) / "model.db", synchronous="NORMAL")
        self.store.migrate()
        self.service = Service(self.store)
        prepaid = self.service.create_account({"payment": "prepaid", "type": "euros"}, None)
        postpaid = self.service.create_account(
            {"payment": "postpaid", "type": "credits", "credit_limit": CREDIT_LIMIT}, None
        )
        self.accounts = {"prepaid": prepaid["id"], "postpaid": postpaid["id"]}
        self.balance = {"prepaid": 0, "postpaid": 0}
        self.floor = {"prepaid": 0, "postpaid": -parse_amount(CREDIT_LIMIT)}
        self.charges: dict[str, list[int]] = {}  # entry id -> [charged, refunded]
        self.charge_account: dict[str, str] = {}
        self.sent: dict[str, tuple[str, str, str, dict[str, str]]] = {}
        self.answers: dict[str, dict[str, object]] = {}
        self.n = 0

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.close()
            self.folder.cleanup()

    def _post(self, which: str, kind: EntryKind, body: dict[str, str]) -> dict[str, object] | None:
        self.n += 1
        key = f"k{self.n}"
        try:
            answer = self.service.post_entry(self.accounts[which], kind, body, key)
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
        allowed = self.balance[which] - minor >= self.floor[which]
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

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(list(self.sent)))
        _, kind, account_id, body = self.sent[key]
        again = self.service.post_entry(account_id, EntryKind(kind), body, key)
        assert again == self.answers[key]

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def conflicting_reuse(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(list(self.sent)))
        _, kind, account_id, body = self.sent[key]
        changed = {**body, "amount": format_amount(parse_amount(body["amount"]) + 1)}
        try:
            self.service.post_entry(account_id, EntryKind(kind), changed, key)
        except IdempotencyConflict:
            return
        raise AssertionError("a reused key with another body must conflict")

    @invariant()
    def balances_match_the_model(self) -> None:
        if not hasattr(self, "store"):
            return
        for which, account_id in self.accounts.items():
            stored = self.store.get_account(account_id).live.balance_minor
            assert stored == self.balance[which]
            assert stored >= self.floor[which]

    @invariant()
    def verify_is_clean(self) -> None:
        if hasattr(self, "store"):
            assert self.store.verify() == []


LedgerMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestLedger = LedgerMachine.TestCase
