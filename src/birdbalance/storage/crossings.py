"""What a balance move raises, written in the move's own transaction: threshold
crossings become events, their deliveries and auto-recharge requests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Final

from birdbalance.alerts import Crossing, EventType, RuleState, crossings
from birdbalance.errors import NotFound
from birdbalance.event_bodies import event_body, recharge_amount_minor, subscribed
from birdbalance.ids import new_id
from birdbalance.ledger import Mode
from birdbalance.money import format_amount
from birdbalance.records import AlertRule, Recharge

from .base import Connection, LedgerKey, SQLBase
from .ledgers import LedgerMove, LockedLedger, ledger_pairs

RULE_SQL: Final = (
    "SELECT id, account_id, mode, below_minor, hysteresis_minor, low, created_at,"
    " recharge_amount_minor, recharge_up_to_minor, recharge_max_failures, recharge_failures,"
    " recharge_disabled_at FROM alert_rules"
)


EVENT_SQL: Final = "SELECT id, type, account_id, mode, rule_id, payload, created_at FROM events"


def rule_from_row(row: Any) -> AlertRule:
    recharge = None
    if row[7] is not None or row[8] is not None:
        recharge = Recharge(row[7], row[8], row[9], row[10], row[11])
    return AlertRule(row[0], row[1], Mode(row[2]), row[3], row[4], bool(row[5]), row[6], recharge)


def rules_from(rows: Iterable[Any]) -> dict[LedgerKey, list[RuleState]]:
    found: dict[LedgerKey, list[RuleState]] = {}
    for row in rows:
        found.setdefault((row[0], Mode(row[1])), []).append(
            RuleState(row[2], row[3], row[4], bool(row[5]))
        )
    return found


class CrossingWrites(SQLBase):
    """Events, deliveries and recharge requests raised by a move, in its transaction."""

    def _raise_alerts(
        self,
        conn: Connection,
        ledger: LockedLedger,
        balance_after_minor: int,
        held_after_minor: int,
        now: str,
        cause: dict[str, Any],
    ) -> None:
        """Write the events this move of the available amount causes, in its transaction."""
        if ledger.balance_minor - ledger.held_minor == balance_after_minor - held_after_minor:
            return
        rules = self._alert_rules(conn, [(ledger.account_id, ledger.mode)])
        self._write_crossings(
            conn,
            ledger,
            rules.get((ledger.account_id, ledger.mode), []),
            balance_after_minor,
            held_after_minor,
            now,
            cause,
        )

    def _alert_rules(
        self, conn: Connection, ledgers: Sequence[LedgerKey]
    ) -> dict[LedgerKey, list[RuleState]]:
        """The live alert rules of ``ledgers`` (one query), in rule order."""
        return rules_from(self._send_alert_rules_read(conn, ledgers).fetchall())

    def _send_alert_rules_read(self, conn: Connection, ledgers: Sequence[LedgerKey]) -> Any:
        """The cursor of :meth:`_alert_rules`' query (still unread where pipelined)."""
        return self._execute(
            conn,
            f"WITH w(account_id, mode) AS (VALUES {ledger_pairs(len(ledgers))})"  # noqa: S608 -- placeholders only
            " SELECT r.account_id, r.mode, r.id, r.below_minor, r.hysteresis_minor, r.low"
            " FROM w JOIN alert_rules r ON r.account_id = w.account_id AND r.mode = w.mode"
            " WHERE r.deleted_at IS NULL"
            " ORDER BY r.id",
            [v for account_id, mode in ledgers for v in (account_id, mode.value)],
        )

    def _write_crossings(
        self,
        conn: Connection,
        ledger: LockedLedger,
        rules: list[RuleState],
        balance_after_minor: int,
        held_after_minor: int,
        now: str,
        cause: dict[str, Any],
    ) -> list[RuleState]:
        """Write the events of one move of ``ledger``; the rules' states after it."""
        before = ledger.balance_minor - ledger.held_minor
        after = balance_after_minor - held_after_minor
        raised = crossings(ledger.payment, ledger.credit_limit_minor, before, after, rules)
        if not raised:
            return rules
        moved = self._moved(conn, ledger, balance_after_minor, held_after_minor, now, cause)
        lows: dict[str, bool] = {}
        for crossing in raised:
            if crossing.rule_id is not None:
                lows[crossing.rule_id] = crossing.type is EventType.LOW
                self._execute(
                    conn,
                    "UPDATE alert_rules SET low = ? WHERE id = ?",
                    (int(lows[crossing.rule_id]), crossing.rule_id),
                )
            self._emit(conn, crossing, moved)
            if crossing.rule_id is not None:
                self._recharge_on(conn, crossing, moved)
        return [replace(r, low=lows.get(r.id, r.low)) for r in rules]

    def _moved(
        self,
        conn: Connection,
        ledger: LockedLedger,
        balance_minor: int,
        held_minor: int,
        now: str,
        cause: dict[str, Any],
    ) -> LedgerMove:
        """A move about to raise events, with the subscriptions they may go to (read once)."""
        subscribers = self._execute(
            conn,
            "SELECT id, events FROM webhooks WHERE deleted_at IS NULL"
            " AND (account_id = ? OR account_id IS NULL) ORDER BY id",
            (ledger.account_id,),
        ).fetchall()
        return LedgerMove(ledger, balance_minor, held_minor, now, cause, subscribers)

    def _emit(
        self,
        conn: Connection,
        crossing: Crossing,
        moved: LedgerMove,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Write one event and a delivery per matching subscription; the event's id."""
        ledger = moved.ledger
        event_id = new_id("evt")
        payload = event_body(
            event_id,
            crossing,
            ledger,
            moved.balance_minor,
            moved.held_minor,
            moved.now,
            moved.cause,
            extra,
        )
        self._execute(
            conn,
            "INSERT INTO events (id, type, account_id, mode, rule_id, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event_id,
                crossing.type.value,
                ledger.account_id,
                ledger.mode.value,
                crossing.rule_id,
                payload,
                moved.now,
            ),
        )
        due = False
        for webhook_id, wanted in moved.subscribers:
            if subscribed(wanted, crossing.type.value):
                self._execute(
                    conn,
                    "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts,"
                    " next_attempt_at, created_at) VALUES (?, ?, ?, 'pending', 0, ?, ?)",
                    (new_id("dlv"), event_id, webhook_id, moved.now, moved.now),
                )
                due = True
        if due:
            self._deliveries_due(conn)
        return event_id

    def _recharge_on(self, conn: Connection, crossing: Crossing, moved: LedgerMove) -> None:
        """A rule's crossing and its recharge: going low asks for a top-up; recovering
        (the top-up arrived, or any other credit) clears the failure count."""
        assert crossing.rule_id is not None
        if crossing.type is EventType.RECOVERED:
            self._execute(
                conn,
                "UPDATE alert_rules SET recharge_failures = 0"
                " WHERE id = ? AND recharge_failures > 0",
                (crossing.rule_id,),
            )
        elif crossing.type is EventType.LOW:
            rule = self._alert_rule(conn, crossing.rule_id)
            if rule.recharge is not None and rule.recharge.disabled_at is None:
                self._request_topup(conn, rule, rule.recharge, moved)

    def _request_topup(
        self, conn: Connection, rule: AlertRule, recharge: Recharge, moved: LedgerMove
    ) -> None:
        amount = recharge_amount_minor(recharge, moved.balance_minor - moved.held_minor)
        if amount is None:  # already there (a credit since): nothing to ask for
            return
        scale = moved.ledger.scale
        extra = {
            "recharge": {
                "amount": format_amount(amount, scale),
                "attempt": recharge.failures + 1,
                "max_failures": recharge.max_failures,
            }
        }
        crossing = Crossing(EventType.TOPUP_REQUESTED, rule.id, rule.below_minor)
        self._emit(conn, crossing, moved, extra)

    def _alert_rule(self, conn: Connection, rule_id: str, *, deleted: bool = False) -> AlertRule:
        """A live rule (``deleted``: or a stopped one, which a replay answers)."""
        live = "" if deleted else " AND deleted_at IS NULL"
        row = self._execute(conn, RULE_SQL + " WHERE id = ?" + live, (rule_id,)).fetchone()
        if row is None:
            raise NotFound(f"no alert rule {rule_id}", "alert")
        return rule_from_row(row)
