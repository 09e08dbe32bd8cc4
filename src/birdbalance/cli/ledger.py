"""Money: entries (top-ups, charges, refunds, adjustments), history, the balance at a
moment, statements, and holds."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import click

from birdbalance.cli.base import (
    FAILED_STATUS,
    Audited,
    CLIError,
    F,
    limit_option,
    reference_key,
    reported_errors,
    store_of,
)
from birdbalance.cli.output import (
    note,
    output_mode,
    output_option,
    print_json,
    print_page,
    print_pairs,
    print_table,
    progress,
)
from birdbalance.cli.root import main
from birdbalance.ledger import EntryKind
from birdbalance.representations import posted_json
from birdbalance.service import Service
from birdbalance.shapes import render
from birdbalance.storage import MAX_PAGE_SIZE


def _entry_options(fn: F) -> F:
    options: list[Callable[[Any], Any]] = [
        click.argument("account_id"),
        click.argument("amount"),
        click.option("--reference"),
        click.option(
            "--idempotency-key",
            help=(
                "Makes a retry safe: the same key never writes twice (default: derived from"
                " --reference, so re-running the same command replays it; a new one without)."
            ),
        ),
        click.option("--test", is_flag=True, help="Write to the sandbox ledger."),
        output_option,
        click.pass_context,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


_ENTRY_HEADERS = ["id", "seq", "kind", "amount", "balance after", "reference", "refund of", "at"]


def _entry_row(e: dict[str, Any]) -> list[Any]:
    return [
        e["id"],
        e["seq"],
        e["kind"],
        e["amount"],
        e["balance_after"],
        e["reference"],
        e["refund_of"],
        e["created_at"],
    ]


def _post(
    ctx: click.Context,
    kind: EntryKind,
    account_id: str,
    amount: str,
    extra: dict[str, Any],
    reference: str | None,
    idempotency_key: str | None,
    test: bool,
    as_json: bool,
) -> None:
    mode = "test" if test else "live"
    body: dict[str, Any] = {"amount": amount, "mode": mode, **extra}
    if reference is not None:
        body["reference"] = reference
    key = idempotency_key or reference_key(reference, kind.value, account_id, mode)
    with store_of(ctx) as store:
        try:
            with reported_errors():
                result = Service(store).post_entry_record(account_id, kind, body, key)
        except CLIError:
            if idempotency_key is None and reference is not None and _conflicted(ctx):
                raise CLIError(
                    f"a {kind.value} with reference {reference!r} was already posted to this"
                    " ledger with another amount or body: a re-run with the same --reference"
                    " replays the first one. Use another --reference (or --idempotency-key)."
                ) from None
            raise
    posted = posted_json(result)
    if as_json:
        print_json(posted)
    else:
        print_table(_ENTRY_HEADERS, [_entry_row(posted["entry"])])
        balance = posted["balance"]
        note(f"balance ({balance['mode']}): {balance['amount']} {balance['type']}")
    if result.replayed:
        click.echo(
            f"already posted: this {kind.value} (reference {reference!r}) was written by an"
            " earlier run; nothing was posted again",
            err=True,
        )
    elif idempotency_key is None and reference is None:
        click.echo(
            "posted; running this command again posts again (give --reference to make a"
            " re-run safe)",
            err=True,
        )


def _conflicted(ctx: click.Context) -> bool:
    return ctx.meta.get(FAILED_STATUS) == 409


def _entry_command(kind: EntryKind, doc: str) -> Callable[..., None]:
    @_entry_options
    def command(ctx: click.Context, account_id: str, amount: str, **options: Any) -> None:
        _post(ctx, kind, account_id, amount, {}, **options)

    command.__doc__ = doc
    return command


main.command("topup", cls=Audited)(
    _entry_command(EntryKind.TOPUP, "Add AMOUNT to an account's balance.")
)

main.command("charge", cls=Audited)(
    _entry_command(EntryKind.CHARGE, "Charge AMOUNT; prepaid accounts never go below zero.")
)

main.command("adjust", cls=Audited)(
    _entry_command(EntryKind.ADJUSTMENT, "Correct a balance by a signed AMOUNT (e.g. -- -1.5).")
)


@main.command("refund", cls=Audited)
@click.option("--charge", "charge_id", required=True, help="The entry id of the charge.")
@_entry_options
def refund(
    ctx: click.Context, account_id: str, amount: str, charge_id: str, **options: Any
) -> None:
    """Refund AMOUNT of a charge (refunds never exceed the charge)."""
    _post(ctx, EntryKind.REFUND, account_id, amount, {"charge": charge_id}, **options)


@main.command()
@click.argument("account_id")
@click.option("--test", is_flag=True, help="The sandbox ledger.")
@limit_option
@click.option("--cursor")
@click.option("--kind", type=click.Choice([k.value for k in EntryKind]), help="Only this type.")
@click.option("--from", "start", help="Created at or after this RFC 3339 time.")
@click.option("--to", "end", help="Created before this RFC 3339 time.")
@click.option("--reference", help="Only entries with exactly this reference.")
@output_option
@click.pass_context
def history(
    ctx: click.Context,
    account_id: str,
    test: bool,
    limit: int,
    cursor: str | None,
    kind: str | None,
    start: str | None,
    end: str | None,
    reference: str | None,
    as_json: bool,
) -> None:
    """An account's entries, newest first (filtered by type, time and reference)."""
    with store_of(ctx) as store, reported_errors():
        page = render(
            Service(store).list_entries(
                account_id,
                mode="test" if test else "live",
                cursor=cursor,
                limit=str(limit),
                kind=kind,
                start=start,
                end=end,
                reference=reference,
            )
        )
    print_page(page, as_json, _ENTRY_HEADERS, _entry_row)


@main.command("balance-at")
@click.argument("account_id")
@click.argument("at")
@click.option("--test", is_flag=True, help="The sandbox ledger.")
@output_option
@click.pass_context
def balance_at(ctx: click.Context, account_id: str, at: str, test: bool, as_json: bool) -> None:
    """An account's balance at the RFC 3339 time AT (e.g. 2026-11-01T00:00:00Z)."""
    with store_of(ctx) as store, reported_errors():
        found = render(
            Service(store).balance_at(account_id, at=at, mode="test" if test else "live")
        )
    if as_json:
        print_json(found)
    elif output_mode() == "csv":
        print_pairs(found)
    else:
        click.echo(f"{found['amount']} {found['type']} at {found['at']} (after seq {found['seq']})")


@main.command()
@click.argument("account_id")
@click.option("--from", "start", required=True, help="RFC 3339 start (inclusive).")
@click.option("--to", "end", help="RFC 3339 end (exclusive; default and latest: now).")
@click.option("--test", is_flag=True, help="The sandbox ledger.")
@click.option("--csv", "as_csv", is_flag=True, help="Every entry as CSV, with totals.")
@output_option
@click.pass_context
def statement(
    ctx: click.Context,
    account_id: str,
    start: str,
    end: str | None,
    test: bool,
    as_csv: bool,
    as_json: bool,
) -> None:
    """ACCOUNT_ID's statement: opening balance, entries, closing balance, totals by kind."""
    mode = "test" if test else "live"
    as_csv = as_csv or output_mode() == "csv"
    with store_of(ctx) as store, reported_errors():
        service = Service(store)
        if as_csv:
            _, chunks = service.statement_csv(account_id, start=start, end=end, mode=mode)
            with progress("writing the statement"):
                for chunk in chunks:
                    click.echo(chunk, nl=False)
            return
        found = render(
            service.statement(
                account_id, start=start, end=end, mode=mode, cursor=None, limit=str(MAX_PAGE_SIZE)
            )
        )
    if as_json:
        print_json(found)
        return
    click.echo(f"{found['from']} .. {found['to']} ({found['type']}, {found['mode']})")
    click.echo(f"opening balance {found['opening_balance']}")
    totals = ", ".join(f"{k} {v} ({found['counts'][k]})" for k, v in found["totals"].items())
    click.echo(f"totals          {totals}")
    click.echo(f"closing balance {found['closing_balance']}")
    if found["next_cursor"] is not None:
        click.echo(f"(more than {MAX_PAGE_SIZE} entries: --json pages them, --csv lists all)")


@main.group()
def holds() -> None:
    """Reserve amounts, then capture, void or let them expire."""


_HOLD_HEADERS = ["id", "status", "amount", "captured", "expires at", "reference", "created at"]


def _hold_row(h: dict[str, Any]) -> list[Any]:
    return [
        h["id"],
        h["status"],
        h["amount"],
        h["captured"],
        h["expires_at"],
        h["reference"],
        h["created_at"],
    ]


def _show_hold_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    print_table(_HOLD_HEADERS, [_hold_row(result["hold"])])
    if "entry" in result:
        print_table(_ENTRY_HEADERS, [_entry_row(result["entry"])])
        balance = result["balance"]
        note(f"balance ({balance['mode']}): {balance['amount']} {balance['type']}")


_IDEMPOTENCY_HELP = "Makes a retry safe: the same key never writes twice (default: a new UUID)."


@holds.command("create", cls=Audited)
@click.argument("account_id")
@click.argument("amount")
@click.option("--expires-in", "expires_in_s", type=int, help="Seconds (default 86400).")
@click.option("--reference")
@click.option("--idempotency-key", help=_IDEMPOTENCY_HELP)
@click.option("--test", is_flag=True, help="Hold on the sandbox ledger.")
@output_option
@click.pass_context
def holds_create(
    ctx: click.Context,
    account_id: str,
    amount: str,
    expires_in_s: int | None,
    reference: str | None,
    idempotency_key: str | None,
    test: bool,
    as_json: bool,
) -> None:
    """Reserve AMOUNT: it is no longer available until captured, voided or expired."""
    body: dict[str, Any] = {"amount": amount, "mode": "test" if test else "live"}
    if expires_in_s is not None:
        body["expires_in"] = str(expires_in_s)
    if reference is not None:
        body["reference"] = reference
    with store_of(ctx) as store, reported_errors():
        result = render(
            Service(store).create_hold(account_id, body, idempotency_key or str(uuid.uuid4()))
        )
    _show_hold_result(result, as_json)


@holds.command("capture", cls=Audited)
@click.argument("hold_id")
@click.argument("amount", required=False)
@click.option("--reference")
@click.option("--idempotency-key", help=_IDEMPOTENCY_HELP)
@output_option
@click.pass_context
def holds_capture(
    ctx: click.Context,
    hold_id: str,
    amount: str | None,
    reference: str | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Charge AMOUNT of a hold (all of it by default); the rest is released."""
    body: dict[str, Any] = {}
    if amount is not None:
        body["amount"] = amount
    if reference is not None:
        body["reference"] = reference
    with store_of(ctx) as store, reported_errors():
        result = render(
            Service(store).capture_hold(hold_id, body, idempotency_key or str(uuid.uuid4()))
        )
    _show_hold_result(result, as_json)


@holds.command("void", cls=Audited)
@click.argument("hold_id")
@click.option("--idempotency-key", help=_IDEMPOTENCY_HELP)
@output_option
@click.pass_context
def holds_void(
    ctx: click.Context, hold_id: str, idempotency_key: str | None, as_json: bool
) -> None:
    """Release a hold without charging anything."""
    with store_of(ctx) as store, reported_errors():
        result = render(Service(store).void_hold(hold_id, {}, idempotency_key or str(uuid.uuid4())))
    _show_hold_result(result, as_json)


@holds.command("show")
@click.argument("hold_id")
@output_option
@click.pass_context
def holds_show(ctx: click.Context, hold_id: str, as_json: bool) -> None:
    """One hold."""
    with store_of(ctx) as store, reported_errors():
        hold = render(Service(store).get_hold(hold_id))
    _show_hold_result({"hold": hold}, as_json)


@holds.command("list")
@click.argument("account_id")
@click.option("--test", is_flag=True, help="The sandbox ledger.")
@click.option("--status", type=click.Choice(["pending", "captured", "voided", "expired"]))
@limit_option
@click.option("--cursor")
@output_option
@click.pass_context
def holds_list(
    ctx: click.Context,
    account_id: str,
    test: bool,
    status: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """An account's holds, newest first."""
    with store_of(ctx) as store, reported_errors():
        page = render(
            Service(store).list_holds(
                account_id,
                mode="test" if test else "live",
                status=status,
                cursor=cursor,
                limit=str(limit),
            )
        )
    print_page(page, as_json, _HOLD_HEADERS, _hold_row)


@holds.command("expire", cls=Audited)
@click.pass_context
def holds_expire(ctx: click.Context) -> None:
    """Expire every hold that is due now (servers also do this every second)."""
    with store_of(ctx) as store, reported_errors():
        count = 0
        while True:
            batch = store.expire_holds()
            count += batch
            if batch == 0:
                break
    click.echo(f"expired {count} holds")
