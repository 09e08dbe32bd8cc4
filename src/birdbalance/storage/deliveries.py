"""Webhook subscriptions and the delivery outbox: claiming due deliveries (leased, a
few per subscription), recording attempts, redelivering, and the outbox's gauges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from birdbalance.errors import InvalidParameter, NotFound, StateConflict
from birdbalance.ids import new_id, utc_timestamp
from birdbalance.records import (
    Delivery,
    DueDelivery,
    Idempotency,
    NewWebhook,
    OutboxStats,
    Page,
    Webhook,
)

from .base import LIMIT_LOCK, Connection
from .history import MAX_STATEMENT_PAGE
from .holds import MAX_EXPIRE_BATCH
from .moves import LedgerMoves

_WEBHOOK_SQL: Final = "SELECT id, url, account_id, events, created_at FROM webhooks"


#: Subscriptions with due deliveries, the longest waiting first (one index probe each).
_DUE_WEBHOOKS_SQL: Final = (
    "SELECT id FROM (SELECT w.id, (SELECT MIN(d.next_attempt_at) FROM deliveries d"
    " WHERE d.webhook_id = w.id AND d.status = 'pending') AS due_at"
    " FROM webhooks w WHERE w.deleted_at IS NULL) AS due WHERE due_at <= ?"
    " ORDER BY due_at, id LIMIT ?"
)


_DUE_SQL: Final = (
    "SELECT d.id, d.attempts, w.url, w.secret, e.payload FROM deliveries d"
    " JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.id = d.event_id"
    " WHERE d.webhook_id = ? AND d.status = 'pending' AND d.next_attempt_at <= ?"
    " ORDER BY d.next_attempt_at, d.id LIMIT ?"
)


#: What a claimed delivery says until its attempt's result is recorded.
_CUT_OFF: Final = "no result recorded: the attempt was cut off (process stopped or lease lost)"


_DELIVERY_SQL: Final = (
    "SELECT id, event_id, webhook_id, status, attempts, next_attempt_at, last_status,"
    " last_error, created_at, delivered_at FROM deliveries"
)


def _webhook_from_row(row: Any) -> Webhook:
    events = tuple(row[3].split(",")) if row[3] else ()
    return Webhook(row[0], row[1], row[2], events, row[4])


class DeliveryStore(LedgerMoves):
    """Webhook subscriptions and the delivery outbox."""

    def deliveries_of(self, event_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        """The deliveries of these events (at most :data:`MAX_STATEMENT_PAGE`), by event."""
        assert len(event_ids) <= MAX_STATEMENT_PAGE
        found: dict[str, list[Delivery]] = {event_id: [] for event_id in event_ids}
        if not event_ids:
            return found
        marks = ", ".join(["?"] * len(event_ids))
        with self._read() as conn:
            rows = self._execute(
                conn,
                _DELIVERY_SQL + f" WHERE event_id IN ({marks}) ORDER BY id",
                list(event_ids),
            ).fetchall()
        for row in rows:
            found[row[1]].append(Delivery(*row))
        return found

    def create_webhook(
        self, new: NewWebhook, max_webhooks: int, idem: Idempotency | None = None
    ) -> tuple[Webhook, str]:
        """A subscription, counted against ``max_webhooks`` in the same transaction, and
        its secret (a replay's: the one in force now, which signs what it receives)."""
        with self._write() as conn:
            if (done := self._replayed_id(conn, idem, "webhook")) is not None:
                return self._webhook(conn, done, deleted=True), self._webhook_secret(conn, done)
            self._lock_key(conn, f"{LIMIT_LOCK}webhooks")
            live = self._execute(
                conn, "SELECT COUNT(*) FROM webhooks WHERE deleted_at IS NULL"
            ).fetchone()[0]
            if live >= max_webhooks:
                raise InvalidParameter(f"there are at most {max_webhooks} webhooks", "url")
            if new.account_id is not None:
                self._account(conn, new.account_id)
            webhook_id = new_id("whk")
            self._execute(
                conn,
                "INSERT INTO webhooks (id, url, account_id, events, secret, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    webhook_id,
                    new.url,
                    new.account_id,
                    ",".join(new.events),
                    new.secret,
                    utc_timestamp(),
                ),
            )
            self._remember(conn, idem, "webhook", webhook_id)
            return self._webhook(conn, webhook_id), new.secret

    def _webhook(self, conn: Connection, webhook_id: str, *, deleted: bool = False) -> Webhook:
        """A live subscription (``deleted``: or a stopped one, which a replay answers)."""
        live = "" if deleted else " AND deleted_at IS NULL"
        row = self._execute(conn, _WEBHOOK_SQL + " WHERE id = ?" + live, (webhook_id,)).fetchone()
        if row is None:
            raise NotFound(f"no webhook {webhook_id}", "webhook")
        return _webhook_from_row(row)

    def _webhook_secret(self, conn: Connection, webhook_id: str) -> str:
        row = self._execute(
            conn, "SELECT secret FROM webhooks WHERE id = ?", (webhook_id,)
        ).fetchone()
        assert row is not None, webhook_id
        return str(row[0])

    def list_webhooks(self) -> list[Webhook]:
        with self._read() as conn:
            rows = self._execute(
                conn, _WEBHOOK_SQL + " WHERE deleted_at IS NULL ORDER BY id"
            ).fetchall()
        return [_webhook_from_row(r) for r in rows]

    def rotate_webhook_secret(
        self, webhook_id: str, secret: str, idem: Idempotency | None = None
    ) -> tuple[Webhook, str]:
        """Give a subscription a new secret: every delivery attempt from now on signs
        with it (those still pending included). A replay changes nothing and answers the
        secret in force."""
        with self._write() as conn:
            if (done := self._replayed_id(conn, idem, "webhook")) is not None:
                return self._webhook(conn, done, deleted=True), self._webhook_secret(conn, done)
            self._webhook(conn, webhook_id)  # 404 for an unknown or deleted one
            self._execute(conn, "UPDATE webhooks SET secret = ? WHERE id = ?", (secret, webhook_id))
            self._remember(conn, idem, "webhook", webhook_id)
            return self._webhook(conn, webhook_id), secret

    def delete_webhook(self, webhook_id: str, idem: Idempotency | None = None) -> Webhook:
        """Stop a subscription; its pending deliveries are dead-lettered."""
        now = utc_timestamp()
        with self._write() as conn:
            if (done := self._replayed_id(conn, idem, "webhook")) is not None:
                return self._webhook(conn, done, deleted=True)
            webhook = self._webhook(conn, webhook_id)
            self._remember(conn, idem, "webhook", webhook_id)
            self._execute(
                conn, "UPDATE webhooks SET deleted_at = ? WHERE id = ?", (now, webhook_id)
            )
            self._execute(
                conn,
                "UPDATE deliveries SET status = 'dead', last_error = 'webhook deleted'"
                " WHERE webhook_id = ? AND status = 'pending'",
                (webhook_id,),
            )
            return webhook

    def claim_deliveries(
        self,
        now: str,
        lease_until: str,
        limit: int,
        *,
        max_attempts: int,
        per_webhook: int,
        in_flight: Mapping[str, int],
    ) -> list[DueDelivery]:
        """Take up to ``limit`` due deliveries for one attempt each.

        Each subscription gets at most ``per_webhook`` less its ``in_flight`` count, so a
        backlog of one receiver never crowds out another; the oldest due go first. The
        claim counts the attempt and notes that no result came back yet, and moves the
        next attempt to ``lease_until``: another node (or this one after a crash) retries
        it only if the result is never recorded, and the attempt is on record either
        way. A delivery whose ``max_attempts``-th attempt never recorded a result is
        dead-lettered here instead of claimed.
        """
        assert 1 <= limit <= MAX_EXPIRE_BATCH and 1 <= per_webhook <= limit
        # Most polls find nothing: look first with a read, so an idle poll never takes
        # the write lock (SQLite has one for the whole database).
        with self._read() as conn:
            webhooks = [
                row[0]
                for row in self._execute(
                    conn, _DUE_WEBHOOKS_SQL, (now, limit + len(in_flight))
                ).fetchall()
                if in_flight.get(row[0], 0) < per_webhook
            ]
        claimed: list[DueDelivery] = []
        if not webhooks:
            return claimed
        with self._write() as conn:
            for webhook_id in webhooks:
                room = min(per_webhook - in_flight.get(webhook_id, 0), limit - len(claimed))
                if room <= 0:
                    break
                rows = self._execute(
                    conn, _DUE_SQL + self.skip_locked, (webhook_id, now, room)
                ).fetchall()
                for row in rows:
                    attempts = int(row[1])
                    if attempts >= max_attempts:
                        self._execute(
                            conn,
                            "UPDATE deliveries SET status = 'dead', last_error = ? WHERE id = ?",
                            (_CUT_OFF + "; no attempts left", row[0]),
                        )
                        continue
                    self._execute(
                        conn,
                        "UPDATE deliveries SET next_attempt_at = ?, attempts = ?,"
                        " last_status = NULL, last_error = ? WHERE id = ?",
                        (lease_until, attempts + 1, _CUT_OFF, row[0]),
                    )
                    claimed.append(DueDelivery(row[0], attempts, webhook_id, *row[2:]))
        return claimed

    def record_attempt(
        self,
        delivery_id: str,
        *,
        attempt: int,
        delivered: bool,
        status: int | None,
        error: str | None,
        retry_at: str | None,
    ) -> bool:
        """Attempt number ``attempt``'s result: delivered, retried at ``retry_at``, or
        (None) dead. False when the delivery has moved on since the claim (redelivered,
        deleted, or claimed again after the lease ran out), and nothing is changed."""
        now = utc_timestamp()
        if delivered:
            outcome, next_at, delivered_at = "delivered", now, now
        elif retry_at is not None:
            outcome, next_at, delivered_at = "pending", retry_at, None
        else:
            outcome, next_at, delivered_at = "dead", now, None
        with self._write() as conn:
            cursor = self._execute(
                conn,
                "UPDATE deliveries SET status = ?, next_attempt_at = ?, last_status = ?,"
                " last_error = ?, delivered_at = ?"
                " WHERE id = ? AND status = 'pending' AND attempts = ?",
                (outcome, next_at, status, error, delivered_at, delivery_id, attempt),
            )
            return self._rowcount(conn, cursor) == 1

    def redeliver(self, delivery_id: str, idem: Idempotency | None = None) -> Delivery:
        """Send a delivery again now, with a fresh set of attempts (a replay queues
        nothing more and answers the delivery as it is now)."""
        now = utc_timestamp()
        with self._write() as conn:
            if (done := self._replayed_id(conn, idem, "delivery")) is not None:
                return self._delivery(conn, done)
            row = self._execute(
                conn,
                "SELECT w.deleted_at FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id"
                " WHERE d.id = ?",
                (delivery_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no delivery {delivery_id}", "delivery")
            if row[0] is not None:
                raise StateConflict("its webhook was deleted", "delivery")
            self._execute(
                conn,
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                " delivered_at = NULL WHERE id = ?",
                (now, delivery_id),
            )
            self._deliveries_due(conn)
            self._remember(conn, idem, "delivery", delivery_id)
            return self._delivery(conn, delivery_id)

    def _delivery(self, conn: Connection, delivery_id: str) -> Delivery:
        row = self._execute(conn, _DELIVERY_SQL + " WHERE id = ?", (delivery_id,)).fetchone()
        if row is None:
            raise NotFound(f"no delivery {delivery_id}", "delivery")
        return Delivery(*row)

    def list_deliveries(
        self, status: str | None, webhook_id: str | None, cursor: str | None, limit: int
    ) -> Page[Delivery]:
        sql = _DELIVERY_SQL + " WHERE id < ?"
        args: list[Any] = [cursor or "~"]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if webhook_id is not None:
            sql += " AND webhook_id = ?"
            args.append(webhook_id)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._read() as conn:
            rows = self._execute(conn, sql, [*args, limit + 1]).fetchall()
        items = [Delivery(*r) for r in rows[:limit]]
        return Page(items, items[-1].id if len(rows) > limit else None)

    def outbox_stats(self) -> OutboxStats:
        with self._read() as conn:
            # Both read the partial index of pending deliveries, however many were sent.
            pending, oldest = self._execute(
                conn, "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status = 'pending'"
            ).fetchone()
        return OutboxStats(int(pending), oldest)
