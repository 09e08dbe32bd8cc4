"""Alert rules and the events they raised: creating, listing, deleting rules, and
recording a failed auto-recharge."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from birdbalance.alerts import Crossing, EventType, is_low
from birdbalance.errors import InvalidParameter, StateConflict
from birdbalance.ids import new_id, utc_timestamp
from birdbalance.ledger import Mode
from birdbalance.records import AlertRule, Event, Idempotency, NewAlertRule, Page

from .base import LIMIT_LOCK
from .crossings import EVENT_SQL, RULE_SQL, rule_from_row
from .moves import LedgerMoves


class AlertRuleStore(LedgerMoves):
    """Alert rules, the events they raised, and recharge failures."""

    def create_alert_rule(
        self, new: NewAlertRule, max_rules: int, idem: Idempotency | None = None
    ) -> AlertRule:
        """Add a threshold; it starts low if the available amount is already below it."""
        now = utc_timestamp()
        with self._write() as conn:
            if (done := self._replayed_id(conn, idem, "alert")) is not None:
                return self._alert_rule(conn, done, deleted=True)
            # The bound is per account, and an account has two ledgers (live and test):
            # one lock per account keeps concurrent creations on both from passing it.
            self._lock_key(conn, f"{LIMIT_LOCK}alert-rules:{new.account_id}")
            ledger = self._lock_ledger(conn, new.account_id, new.mode, now)
            available = ledger.balance_minor - ledger.held_minor
            account = self._account(conn, new.account_id)
            if account.shared is not None:
                # A shared sub-account's rules watch what it may spend, not its own
                # (empty) ledger; a top-up of it cannot be asked for.
                available = account.shared[new.mode].available_minor
                if new.recharge is not None:
                    raise InvalidParameter(
                        f"{new.account_id} spends the balance of {account.funding_id}: a"
                        " recharge would top up a ledger it does not have; set it on"
                        f" {account.funding_id}",
                        "recharge",
                    )
            count = self._execute(
                conn,
                "SELECT COUNT(*) FROM alert_rules WHERE account_id = ? AND deleted_at IS NULL",
                (new.account_id,),
            ).fetchone()[0]
            if count >= max_rules:
                raise InvalidParameter(f"an account has at most {max_rules} alert rules", "below")
            rule_id = new_id("alr")
            low = is_low(new.below_minor, available)
            recharge = new.recharge
            self._execute(
                conn,
                "INSERT INTO alert_rules (id, account_id, mode, below_minor, hysteresis_minor,"
                " low, created_at, deleted_at, recharge_amount_minor, recharge_up_to_minor,"
                " recharge_max_failures) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                (
                    rule_id,
                    new.account_id,
                    new.mode.value,
                    new.below_minor,
                    new.hysteresis_minor,
                    int(low),
                    now,
                    None if recharge is None else recharge.amount_minor,
                    None if recharge is None else recharge.up_to_minor,
                    3 if recharge is None else recharge.max_failures,
                ),
            )
            rule = self._alert_rule(conn, rule_id)
            self._remember(conn, idem, "alert", rule_id)
            if low and rule.recharge is not None:
                # Created on a ledger already below the line: ask now, not at the next dip.
                cause = {"alert_created": rule_id}
                moved = self._moved(
                    conn, ledger, ledger.balance_minor, ledger.held_minor, now, cause
                )
                self._request_topup(conn, rule, rule.recharge, moved)
            return rule

    def list_alert_rules(self, account_id: str) -> list[AlertRule]:
        with self._read() as conn:
            self._account(conn, account_id)
            rows = self._execute(
                conn,
                RULE_SQL + " WHERE account_id = ? AND deleted_at IS NULL ORDER BY id",
                (account_id,),
            ).fetchall()
        return [rule_from_row(r) for r in rows]

    def delete_alert_rule(self, rule_id: str, idem: Idempotency | None = None) -> AlertRule:
        """Stop a rule; its past events keep naming it."""
        with self._write() as conn:
            if (done := self._replayed_id(conn, idem, "alert")) is not None:
                return self._alert_rule(conn, done, deleted=True)
            rule = self._alert_rule(conn, rule_id)
            self._remember(conn, idem, "alert", rule_id)
            self._execute(
                conn,
                "UPDATE alert_rules SET deleted_at = ? WHERE id = ?",
                (utc_timestamp(), rule_id),
            )
            return rule

    def record_recharge_failure(
        self, rule_id: str, reason: str | None, idem: Idempotency | None = None
    ) -> AlertRule:
        """The operator's payment system could not top up: ask again while the rule is
        low, or stop asking (``recharge.disabled``) at the rule's ``max_failures``."""
        now = utc_timestamp()
        with self._write() as conn:
            if (done := self._replayed_id(conn, idem, "alert")) is not None:
                return self._alert_rule(conn, done, deleted=True)
            found = self._alert_rule(conn, rule_id)
            ledger = self._lock_ledger(conn, found.account_id, found.mode, now)
            rule = self._alert_rule(conn, rule_id)  # under the ledger's lock now
            recharge = rule.recharge
            if recharge is None:
                raise StateConflict(f"alert rule {rule_id} has no recharge")
            if recharge.disabled_at is not None:
                raise StateConflict(f"the recharge of {rule_id} is disabled")
            failures = recharge.failures + 1
            disabled = now if failures >= recharge.max_failures else None
            self._execute(
                conn,
                "UPDATE alert_rules SET recharge_failures = ?, recharge_disabled_at = ?"
                " WHERE id = ?",
                (failures, disabled, rule_id),
            )
            cause: dict[str, Any] = {"recharge_failed": reason or ""}
            moved = self._moved(conn, ledger, ledger.balance_minor, ledger.held_minor, now, cause)
            after = replace(recharge, failures=failures, disabled_at=disabled)
            if disabled is not None:
                crossing = Crossing(EventType.RECHARGE_DISABLED, rule.id, rule.below_minor)
                extra = {"recharge": {"failures": failures, "max_failures": after.max_failures}}
                self._emit(conn, crossing, moved, extra)
            elif rule.low:
                self._request_topup(conn, rule, after, moved)
            self._remember(conn, idem, "alert", rule_id)
            return self._alert_rule(conn, rule_id)

    def list_events(self, account_id: str | None, cursor: str | None, limit: int) -> Page[Event]:
        """Events newest first, of one account or of all."""
        sql = EVENT_SQL + " WHERE id < ?"
        args: list[Any] = [cursor or "~"]
        if account_id is not None:
            sql += " AND account_id = ?"
            args.append(account_id)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._read() as conn:
            rows = self._execute(conn, sql, [*args, limit + 1]).fetchall()
        items = [Event(r[0], r[1], r[2], Mode(r[3]), r[4], r[5], r[6]) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)
