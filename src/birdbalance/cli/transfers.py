"""Transfers: ``birdbalance transfer FROM TO AMOUNT`` and ``birdbalance transfers``."""

from __future__ import annotations

from typing import Any

import click

from birdbalance.cli.base import (
    Audited,
    limit_option,
    reference_key,
    reported_errors,
    store_of,
)
from birdbalance.cli.output import note, output_option, print_json, print_page, print_table
from birdbalance.cli.root import main
from birdbalance.service import Service
from birdbalance.shapes import render

_TRANSFER_HEADERS = ["id", "from", "to", "mode", "amount", "reference", "at"]


def _transfer_row(t: dict[str, Any]) -> list[Any]:
    return [t["id"], t["from"], t["to"], t["mode"], t["amount"], t["reference"], t["created_at"]]


@main.command("transfer", cls=Audited)
@click.argument("from_id", metavar="FROM")
@click.argument("to_id", metavar="TO")
@click.argument("amount")
@click.option("--reference", help="Your reference; a re-run with it replays the transfer.")
@click.option("--idempotency-key", help="Makes a retry safe: the same key never writes twice.")
@click.option("--test", is_flag=True, help="Between the sandbox ledgers.")
@output_option
@click.pass_context
def transfer(
    ctx: click.Context,
    from_id: str,
    to_id: str,
    amount: str,
    reference: str | None,
    idempotency_key: str | None,
    test: bool,
    as_json: bool,
) -> None:
    """Move AMOUNT from account FROM to account TO (one asset): both entries or neither."""
    mode = "test" if test else "live"
    body: dict[str, Any] = {"from": from_id, "to": to_id, "amount": amount, "mode": mode}
    if reference is not None:
        body["reference"] = reference
    key = idempotency_key or reference_key(reference, "transfer", from_id, to_id, mode)
    with store_of(ctx) as store, reported_errors():
        result = render(Service(store).create_transfer(body, key))
    if as_json:
        print_json(result)
        return
    print_table(_TRANSFER_HEADERS, [_transfer_row(result["transfer"])])
    for leg in result["legs"]:
        balance = leg["balance"]
        note(f"{leg['entry']['account_id']}: {balance['amount']} {balance['type']} ({mode})")


@main.command("transfers")
@click.option("--account", help="Only transfers from or to this account.")
@limit_option
@click.option("--cursor")
@output_option
@click.pass_context
def transfers(
    ctx: click.Context, account: str | None, limit: int, cursor: str | None, as_json: bool
) -> None:
    """Transfers, newest first."""
    with store_of(ctx) as store, reported_errors():
        page = render(
            Service(store).list_transfers(account=account, cursor=cursor, limit=str(limit))
        )
    print_page(page, as_json, _TRANSFER_HEADERS, _transfer_row)
