"""Alerts and their delivery: alert rules, events, webhook subscriptions, deliveries."""

from __future__ import annotations

from typing import Any

import click

from birdbalance.cli.base import Audited, limit_option, reported_errors, settings_of, store_of
from birdbalance.cli.output import (
    note,
    output_option,
    print_json,
    print_page,
    print_pairs,
    print_table,
)
from birdbalance.cli.root import main
from birdbalance.records import DELIVERY_STATUSES
from birdbalance.service import Service
from birdbalance.shapes import render


@main.group()
def alerts() -> None:
    """Low-balance thresholds; their events go to the outbox (`birdbalance events`)."""


_ALERT_HEADERS = ["id", "mode", "below", "hysteresis", "state", "recharge", "created at"]


def _recharge_cell(recharge: dict[str, Any] | None) -> str:
    if recharge is None:
        return ""
    what = f"+{recharge['amount']}" if recharge["amount"] else f"up to {recharge['up_to']}"
    failed = f", {recharge['failures']}/{recharge['max_failures']} failed"
    return what + failed + (", disabled" if recharge["disabled_at"] else "")


def _alert_row(a: dict[str, Any]) -> list[Any]:
    recharge = _recharge_cell(a["recharge"])
    return [a["id"], a["mode"], a["below"], a["hysteresis"], a["state"], recharge, a["created_at"]]


@alerts.command("add", cls=Audited)
@click.argument("account_id")
@click.option("--below", required=True, help="balance.low fires once below this amount.")
@click.option("--hysteresis", help="balance.recovered needs below + this (default 0).")
@click.option("--test", is_flag=True, help="Watch the sandbox ledger.")
@click.option("--recharge", help="Also request a top-up of this amount (topup.requested).")
@click.option("--recharge-up-to", help="Also request a top-up back up to this amount.")
@click.option("--max-failures", type=int, help="Disable the recharge after N failures (3).")
@output_option
@click.pass_context
def alerts_add(
    ctx: click.Context,
    account_id: str,
    below: str,
    hysteresis: str | None,
    test: bool,
    recharge: str | None,
    recharge_up_to: str | None,
    max_failures: int | None,
    as_json: bool,
) -> None:
    """Alert when ACCOUNT_ID's available balance falls below an amount.

    With --recharge or --recharge-up-to, going low also emits topup.requested for your
    payment system, which answers with a top-up or `alerts recharge-failed`.
    """
    body: dict[str, Any] = {"below": below, "mode": "test" if test else "live"}
    if hysteresis is not None:
        body["hysteresis"] = hysteresis
    if recharge is not None or recharge_up_to is not None or max_failures is not None:
        spec: dict[str, Any] = {}
        if recharge is not None:
            spec["amount"] = recharge
        if recharge_up_to is not None:
            spec["up_to"] = recharge_up_to
        if max_failures is not None:
            spec["max_failures"] = max_failures
        body["recharge"] = spec
    with store_of(ctx) as store, reported_errors():
        rule = render(Service(store).create_alert(account_id, body))
    if as_json:
        print_json(rule)
    else:
        print_table(_ALERT_HEADERS, [_alert_row(rule)])


@alerts.command("list")
@click.argument("account_id")
@output_option
@click.pass_context
def alerts_list(ctx: click.Context, account_id: str, as_json: bool) -> None:
    """An account's alert rules."""
    with store_of(ctx) as store, reported_errors():
        rules = render(Service(store).list_alerts(account_id))
    if as_json:
        print_json(rules)
    else:
        print_table(_ALERT_HEADERS, [_alert_row(r) for r in rules["data"]])


@alerts.command("recharge-failed", cls=Audited)
@click.argument("alert_id")
@click.option("--reason", help="Why the top-up failed (kept in the event).")
@output_option
@click.pass_context
def alerts_recharge_failed(
    ctx: click.Context, alert_id: str, reason: str | None, as_json: bool
) -> None:
    """Report that a requested top-up failed: ask again, or disable at max failures."""
    body = {} if reason is None else {"reason": reason}
    with store_of(ctx) as store, reported_errors():
        rule = render(Service(store).recharge_failed(alert_id, body))
    if as_json:
        print_json(rule)
    else:
        print_table(_ALERT_HEADERS, [_alert_row(rule)])


@alerts.command("remove", cls=Audited)
@click.argument("alert_id")
@output_option
@click.pass_context
def alerts_remove(ctx: click.Context, alert_id: str, as_json: bool) -> None:
    """Stop an alert rule (its past events remain)."""
    with store_of(ctx) as store, reported_errors():
        rule = render(Service(store).delete_alert(alert_id))
    if as_json:
        print_json(rule)
    else:
        note(f"removed {rule['id']}")


@main.group()
def events() -> None:
    """The outbox: balance.low, balance.recovered, balance.depleted, credit_limit.reached."""


_EVENT_HEADERS = ["id", "type", "account", "mode", "available", "threshold", "at"]


def _event_row(e: dict[str, Any]) -> list[Any]:
    data = e["data"]
    return [
        e["id"],
        e["type"],
        data["account_id"],
        data["mode"],
        data["available"],
        data.get("threshold"),
        e["created_at"],
    ]


@events.command("list")
@click.option("--account", "account_id", help="Only this account's events.")
@limit_option
@click.option("--cursor")
@output_option
@click.pass_context
def events_list(
    ctx: click.Context, account_id: str | None, limit: int, cursor: str | None, as_json: bool
) -> None:
    """Events, newest first."""
    with store_of(ctx) as store, reported_errors():
        page = render(
            Service(store).list_events(account_id=account_id, cursor=cursor, limit=str(limit))
        )
    print_page(page, as_json, _EVENT_HEADERS, _event_row)


@main.group()
def webhooks() -> None:
    """Where events go: signed POSTs, retried, then dead-lettered."""


_WEBHOOK_HEADERS = ["id", "url", "account", "events", "created at"]


def _webhook_row(w: dict[str, Any]) -> list[Any]:
    return [w["id"], w["url"], w["account_id"], ",".join(w["events"]) or "*", w["created_at"]]


@webhooks.command("add", cls=Audited)
@click.argument("url")
@click.option("--account", "account_id", help="Only this account's events (default all).")
@click.option("--events", "event_types", help="Comma-separated types (default all).")
@output_option
@click.pass_context
def webhooks_add(
    ctx: click.Context,
    url: str,
    account_id: str | None,
    event_types: str | None,
    as_json: bool,
) -> None:
    """Send events to URL; prints the signing secret once."""
    body: dict[str, Any] = {"url": url}
    if account_id is not None:
        body["account"] = account_id
    if event_types is not None:
        body["events"] = event_types
    with store_of(ctx) as store, reported_errors():
        created = render(Service(store).create_webhook(body))
    if as_json:
        print_json(created)
        return
    print_table(_WEBHOOK_HEADERS, [_webhook_row(created)])
    note(f"secret (shown once): {created['secret']}")
    if url.startswith("mailto:") and settings_of(ctx).smtp is None:
        # The servers send the mail, not this shell: say what they need, do not refuse.
        click.echo(
            "note: BIRDBALANCE_SMTP_HOST and BIRDBALANCE_SMTP_FROM are not set here; the"
            " servers that deliver this subscription need them (a server without them"
            " refuses mailto: subscriptions, and fails to send their mail)",
            err=True,
        )


@webhooks.command("list")
@output_option
@click.pass_context
def webhooks_list(ctx: click.Context, as_json: bool) -> None:
    """Every subscription."""
    with store_of(ctx) as store, reported_errors():
        listed = render(Service(store).list_webhooks())
    if as_json:
        print_json(listed)
    else:
        print_table(_WEBHOOK_HEADERS, [_webhook_row(w) for w in listed["data"]])


@webhooks.command("rotate-secret", cls=Audited)
@click.argument("webhook_id")
@output_option
@click.pass_context
def webhooks_rotate_secret(ctx: click.Context, webhook_id: str, as_json: bool) -> None:
    """Give a subscription a new secret in the Standard Webhooks format (printed this
    once); the old one stops signing at once. A subscription made before Standard
    Webhooks gets their headers this way."""
    with store_of(ctx) as store, reported_errors():
        rotated = render(Service(store).rotate_webhook_secret(webhook_id))
    if as_json:
        print_json(rotated)
    else:
        print_pairs(rotated)
        click.echo("Store the secret now: it is not shown again.", err=True)


@webhooks.command("remove", cls=Audited)
@click.argument("webhook_id")
@click.pass_context
def webhooks_remove(ctx: click.Context, webhook_id: str) -> None:
    """Stop a subscription; its pending deliveries are dead-lettered."""
    with store_of(ctx) as store, reported_errors():
        removed = render(Service(store).delete_webhook(webhook_id))
    note(f"removed {removed['id']}")


@main.group()
def deliveries() -> None:
    """Webhook deliveries: list them, send one again."""


_DELIVERY_HEADERS = ["id", "event", "webhook", "status", "attempts", "last", "error"]


def _delivery_row(d: dict[str, Any]) -> list[Any]:
    return [
        d["id"],
        d["event_id"],
        d["webhook_id"],
        d["status"],
        d["attempts"],
        d["last_status"],
        d["last_error"],
    ]


@deliveries.command("list")
@click.option("--status", type=click.Choice(DELIVERY_STATUSES))
@click.option("--webhook", "webhook_id")
@limit_option
@click.option("--cursor")
@output_option
@click.pass_context
def deliveries_list(
    ctx: click.Context,
    status: str | None,
    webhook_id: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Deliveries, newest first."""
    with store_of(ctx) as store, reported_errors():
        page = render(
            Service(store).list_deliveries(
                status=status, webhook_id=webhook_id, cursor=cursor, limit=str(limit)
            )
        )
    print_page(page, as_json, _DELIVERY_HEADERS, _delivery_row)


@deliveries.command("redeliver", cls=Audited)
@click.argument("delivery_id")
@output_option
@click.pass_context
def deliveries_redeliver(ctx: click.Context, delivery_id: str, as_json: bool) -> None:
    """Send a delivery again (a running server picks it up within a second)."""
    with store_of(ctx) as store, reported_errors():
        delivery = render(Service(store).redeliver(delivery_id))
    if as_json:
        print_json(delivery)
    else:
        print_table(_DELIVERY_HEADERS, [_delivery_row(delivery)])
