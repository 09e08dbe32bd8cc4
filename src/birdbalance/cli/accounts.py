"""Accounts, their access keys, admin tokens, and the audit log."""

from __future__ import annotations

from typing import Any

import click

from birdbalance.cli.base import Audited, limit_option, reported_errors, store_of
from birdbalance.cli.output import (
    note,
    output_option,
    print_json,
    print_page,
    print_pairs,
    print_table,
)
from birdbalance.cli.root import main
from birdbalance.records import TokenScope
from birdbalance.service import Service
from birdbalance.shapes import render

_PERIODS = ["day", "month", "all"]


@main.group()
def accounts() -> None:
    """Create, list and show accounts."""


def _account_row(a: dict[str, Any]) -> list[Any]:
    shared = a.get("shared")
    if shared is not None:  # what its keys may spend of its parent's balance
        live, test = (f"{shared[m]['available']} (shared)" for m in ("live", "test"))
    else:
        live, test = a["balances"]["live"]["amount"], a["balances"]["test"]["amount"]
    return [a["id"], a["name"], a["payment"], a["type"], live, test, a["credit_limit"]]


_ACCOUNT_HEADERS = ["id", "name", "payment", "type", "live", "test", "credit limit"]


def _child_row(a: dict[str, Any]) -> list[Any]:
    shared = a.get("shared")
    left = "" if shared is None else shared["live"]["remaining"] or ""
    return [*_account_row(a)[:5], a["month_usage"], left]


_CHILD_HEADERS = ["id", "name", "payment", "type", "live", "month usage", "limit left"]


@accounts.command("create", cls=Audited)
@click.option("--payment", type=click.Choice(["prepaid", "postpaid"]), required=True)
@click.option("--type", "type_", required=True, help="credits, euros, pounds, dollars or ISO-4217.")
@click.option("--name")
@click.option("--credit-limit", help="Postpaid only: how far usage may go.")
@click.option("--parent", help="Make it a sub-account of this account (same asset).")
@click.option("--shared", is_flag=True, help="With --parent: spend the parent's balance.")
@click.option("--limit", "spend_limit", help="A shared sub-account's spending limit.")
@click.option("--period", type=click.Choice(_PERIODS), default="month", show_default=True)
@click.option("--idempotency-key")
@output_option
@click.pass_context
def accounts_create(
    ctx: click.Context,
    payment: str,
    type_: str,
    name: str | None,
    credit_limit: str | None,
    parent: str | None,
    shared: bool,
    spend_limit: str | None,
    period: str,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Create an account (its live and test ledgers start at 0)."""
    body: dict[str, Any] = {"payment": payment, "type": type_}
    if name is not None:
        body["name"] = name
    if credit_limit is not None:
        body["credit_limit"] = credit_limit
    if parent is not None:
        body["parent"] = parent
    if shared:
        body["balance"] = "shared"
    if spend_limit is not None:
        body["spending_limit"] = {"amount": spend_limit, "period": period}
    with store_of(ctx) as store, reported_errors():
        account = render(Service(store).create_account(body, idempotency_key))
    if as_json:
        print_json(account)
    else:
        print_table(_ACCOUNT_HEADERS, [_account_row(account)])


@accounts.command("limit", cls=Audited)
@click.argument("account_id")
@click.argument("amount", required=False)
@click.option("--period", type=click.Choice(_PERIODS), default="month", show_default=True)
@click.option("--remove", is_flag=True, help="Remove the limit instead.")
@output_option
@click.pass_context
def accounts_limit(
    ctx: click.Context,
    account_id: str,
    amount: str | None,
    period: str,
    remove: bool,
    as_json: bool,
) -> None:
    """Set a shared sub-account's spending limit per day, month or all time (or --remove
    it). What the current period already used still counts."""
    if remove == (amount is not None):
        raise click.UsageError("give an AMOUNT, or --remove")
    body = None if remove else {"amount": amount, "period": period}
    with store_of(ctx) as store, reported_errors():
        account = render(Service(store).set_spending_limit(account_id, body))
    if as_json:
        print_json(account)
    else:
        print_pairs(account)


@accounts.command("children")
@click.argument("account_id")
@limit_option
@click.option("--cursor")
@output_option
@click.pass_context
def accounts_children(
    ctx: click.Context, account_id: str, limit: int, cursor: str | None, as_json: bool
) -> None:
    """An account's direct sub-accounts (by id), then the totals of all of them."""
    with store_of(ctx) as store, reported_errors():
        found = render(Service(store).list_subaccounts(account_id, cursor=cursor, limit=str(limit)))
    print_page(found, as_json, _CHILD_HEADERS, _child_row)
    if not as_json:
        totals = found["totals"]
        note(
            f"{totals['accounts']} sub-accounts; live: {totals['live']['amount']}"
            f" ({totals['live']['available']} available)"
        )


@accounts.command("list")
@limit_option
@click.option("--cursor")
@click.option("--search", help="Exact id or part of the name.")
@output_option
@click.pass_context
def accounts_list(
    ctx: click.Context, limit: int, cursor: str | None, search: str | None, as_json: bool
) -> None:
    """List accounts, oldest first."""
    with store_of(ctx) as store, reported_errors():
        page = render(Service(store).list_accounts(cursor=cursor, limit=str(limit), search=search))
    print_page(page, as_json, _ACCOUNT_HEADERS, _account_row)


@accounts.command("show")
@click.argument("account_id")
@output_option
@click.pass_context
def accounts_show(ctx: click.Context, account_id: str, as_json: bool) -> None:
    """Show one account with both balances."""
    with store_of(ctx) as store, reported_errors():
        account = render(Service(store).get_account(account_id))
    if as_json:
        print_json(account)
    else:
        print_pairs(account)


@main.group()
def keys() -> None:
    """Create, list and revoke access keys."""


@keys.command("create", cls=Audited)
@click.argument("account_id")
@click.option("--test", is_flag=True, help="A test_ key for the sandbox ledger.")
@click.option("--idempotency-key")
@output_option
@click.pass_context
def keys_create(
    ctx: click.Context, account_id: str, test: bool, idempotency_key: str | None, as_json: bool
) -> None:
    """Create an access key; its secret is printed this once."""
    with store_of(ctx) as store, reported_errors():
        key = render(
            Service(store).create_key(
                account_id, {"mode": "test" if test else "live"}, idempotency_key
            )
        )
    if as_json:
        print_json(key)
    else:
        print_pairs(key)
        if "key" in key:
            click.echo("Store the key now: it is not shown again.", err=True)


_KEY_HEADERS = ["id", "mode", "hint", "status", "created", "expires", "revoked"]


def _key_row(k: dict[str, Any]) -> list[Any]:
    return [
        k["id"],
        k["mode"],
        k["hint"],
        k["status"],
        k["created_at"],
        k["expires_at"],
        k["revoked_at"],
    ]


@keys.command("list")
@click.argument("account_id")
@output_option
@click.pass_context
def keys_list(ctx: click.Context, account_id: str, as_json: bool) -> None:
    """List an account's keys (never their secrets)."""
    with store_of(ctx) as store, reported_errors():
        found = render(Service(store).list_keys(account_id))
    if as_json:
        print_json(found)
    else:
        print_table(_KEY_HEADERS, [_key_row(k) for k in found["data"]])


@keys.command("revoke", cls=Audited)
@click.argument("key_id")
@output_option
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str, as_json: bool) -> None:
    """Revoke a key; it stops working at once."""
    with store_of(ctx) as store, reported_errors():
        key = render(Service(store).revoke_key(key_id))
    if as_json:
        print_json(key)
    else:
        print_table(_KEY_HEADERS, [_key_row(key)])


@keys.command("rotate", cls=Audited)
@click.argument("key_id")
@click.option(
    "--expires-in",
    "expires_in_s",
    type=int,
    default=86400,
    show_default=True,
    help="Seconds the old key keeps working beside the new one (0: it stops now).",
)
@click.option("--idempotency-key")
@output_option
@click.pass_context
def keys_rotate(
    ctx: click.Context,
    key_id: str,
    expires_in_s: int,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Replace a key: a new one for the same ledger (printed this once), while the old
    one keeps working for --expires-in seconds."""
    with store_of(ctx) as store, reported_errors():
        rotated = render(
            Service(store).rotate_key(key_id, {"expires_in": str(expires_in_s)}, idempotency_key)
        )
    if as_json:
        print_json(rotated)
        return
    print_pairs(rotated["key"])
    click.echo(f"{key_id} stops working at {rotated['previous']['expires_at']}", err=True)
    if "key" in rotated["key"]:
        click.echo("Store the key now: it is not shown again.", err=True)


@main.group()
def tokens() -> None:
    """Admin API tokens with a scope: read (GET only) or write (everything)."""


_TOKEN_HEADERS = ["id", "name", "scope", "account", "hint", "created", "revoked"]


def _token_row(t: dict[str, Any]) -> list[Any]:
    return [
        t["id"],
        t["name"],
        t["scope"],
        t["account"] or "all",
        t["hint"],
        t["created_at"],
        t["revoked_at"],
    ]


@tokens.command("create", cls=Audited)
@click.option("--name", required=True, help="Who or what uses it (shown in the audit log).")
@click.option("--scope", type=click.Choice([s.value for s in TokenScope]), required=True)
@click.option(
    "--account",
    help="Confine it to this account and its sub-accounts (a reseller's token); anything"
    " else answers 404.",
)
@output_option
@click.pass_context
def tokens_create(
    ctx: click.Context, name: str, scope: str, account: str | None, as_json: bool
) -> None:
    """Create an admin token; it is printed this once."""
    with store_of(ctx) as store, reported_errors():
        token = render(Service(store).create_token(name, scope, account))
    if as_json:
        print_json(token)
    else:
        print_pairs(token)
        click.echo("Store the token now: it is not shown again.", err=True)


@tokens.command("list")
@output_option
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """List admin tokens (never the tokens themselves)."""
    with store_of(ctx) as store, reported_errors():
        found = render(Service(store).list_tokens())
    if as_json:
        print_json(found)
    else:
        print_table(_TOKEN_HEADERS, [_token_row(t) for t in found["data"]])


@tokens.command("revoke", cls=Audited)
@click.argument("token_id")
@output_option
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke an admin token; it stops working at once, on every node."""
    with store_of(ctx) as store, reported_errors():
        token = render(Service(store).revoke_token(token_id))
    if as_json:
        print_json(token)
    else:
        print_table(_TOKEN_HEADERS, [_token_row(token)])


@main.command()
@limit_option
@click.option("--cursor")
@click.option("--actor", help="Only this actor (a token id, admin-token, cli:<user>).")
@click.option("--action", help='Only this action, e.g. "DELETE /v1/keys/{key_id}".')
@output_option
@click.pass_context
def audit(
    ctx: click.Context,
    limit: int,
    cursor: str | None,
    actor: str | None,
    action: str | None,
    as_json: bool,
) -> None:
    """The audit log of admin actions, newest first."""
    with store_of(ctx) as store, reported_errors():
        page = render(
            Service(store).list_audit(cursor=cursor, limit=str(limit), actor=actor, action=action)
        )
    if as_json:
        print_json(page)
        return
    print_table(
        ["seq", "at", "actor", "action", "target", "address", "status"],
        [
            [r["seq"], r["at"], r["actor"], r["action"], r["target"], r["address"], r["status"]]
            for r in page["data"]
        ],
    )
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}", err=True)
