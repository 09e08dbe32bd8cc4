"""The ``birdbalance`` command.

Configured by ``BIRDBALANCE_DATABASE_URL`` (default: a SQLite file in the user's data
directory) and ``BIRDBALANCE_ADMIN_TOKEN``; every flag also reads a ``BIRDBALANCE_*``
variable. Management commands work on the database directly, through the same service
layer as the admin API, so they need no running server. Output is a table by default
and JSON with ``--json``; errors go to stderr with a non-zero exit status.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from birdbalance.client import DEFAULT_BASE_URL, Client
from birdbalance.errors import APIError, ClientError, ServiceError
from birdbalance.ledger import EntryKind
from birdbalance.records import AuditRecord
from birdbalance.service import Service
from birdbalance.settings import Settings, SettingsError, redacted_url
from birdbalance.storage import MAX_PAGE_SIZE, Store, open_store

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 1
EXIT_USAGE = 2


class CLIError(click.ClickException):
    """An error printed as ``error: ...`` on stderr; exit status 1."""

    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class CLIUsageError(CLIError):
    """A configuration or usage error; exit status 2."""

    exit_code = EXIT_USAGE


def _describe(error: ServiceError) -> str:
    where = f", parameter {error.parameter}" if error.parameter else ""
    return f"{error.description} (code {error.code}{where})"


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ServiceError as exc:
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.meta[_FAILED_STATUS] = exc.status_code
        raise CLIError(_describe(exc)) from None
    except SettingsError as exc:
        raise CLIUsageError(str(exc)) from None
    except APIError as exc:
        raise CLIError(str(exc)) from None
    except ClientError as exc:
        raise CLIError(str(exc)) from None


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


#: Commands that change something: each run is a record in the audit log.
AUDITED_COMMANDS: Final = frozenset(
    {
        "accounts create",
        "keys create",
        "keys revoke",
        "keys rotate",
        "topup",
        "charge",
        "refund",
        "adjust",
        "holds create",
        "holds capture",
        "holds void",
        "holds expire",
        "alerts add",
        "alerts recharge-failed",
        "alerts remove",
        "webhooks add",
        "webhooks remove",
        "deliveries redeliver",
        "tokens create",
        "tokens revoke",
    }
)
_TARGET_PARAMS: Final = (
    "account_id",
    "key_id",
    "hold_id",
    "alert_id",
    "webhook_id",
    "delivery_id",
    "token_id",
)
_FAILED_STATUS: Final = "birdbalance.failed_status"


def _audit_command(ctx: click.Context, store: Store, status: int) -> None:
    """Record a command that changes something: who ran it, where, and how it ended."""
    command = ctx.command_path.partition(" ")[2]
    if command not in AUDITED_COMMANDS:
        return
    target = next((str(ctx.params[p]) for p in _TARGET_PARAMS if ctx.params.get(p)), None)
    detail: dict[str, Any] = {}
    if idem := ctx.params.get("idempotency_key"):
        detail["idempotency_key"] = str(idem)[:255]
    record = AuditRecord(
        actor=f"cli:{getpass.getuser()}",
        action=f"birdbalance {command}",
        target=target,
        address=f"local:{socket.gethostname()}"[:255],
        status=status,
        detail=detail,
    )
    store.append_audit([record])


@contextmanager
def _store(ctx: click.Context) -> Iterator[Store]:
    from birdbalance.server import ensure_schema

    with _errors():
        store = open_store(_settings(ctx))
        try:
            ensure_schema(store)
            try:
                yield store
            except CLIError:
                _audit_command(ctx, store, ctx.meta.get(_FAILED_STATUS, 500))
                raise
            _audit_command(ctx, store, 200)
        finally:
            store.close()


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _pairs(value: dict[str, Any]) -> None:
    width = max(len(k) for k in value)
    for key, item in value.items():
        shown = json.dumps(item) if isinstance(item, dict | list) else item
        click.echo(f"{key.ljust(width)}  {'' if shown is None else shown}")


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


# --------------------------------------------------------------------------- root


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--database-url",
    envvar="BIRDBALANCE_DATABASE_URL",
    help="sqlite:///path.db (default: a file in the user's data directory) or"
    " postgresql://user@host/db.",
)
@click.version_option(package_name="birdbalance")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """birdbalance: MessageBird-compatible balances on an append-only ledger."""
    with _errors():
        ctx.obj = Settings.from_env().with_overrides(database_url=database_url)


@main.command()
@click.option("--host", envvar="BIRDBALANCE_HOST", help="Address to bind (default 127.0.0.1).")
@click.option("--port", envvar="BIRDBALANCE_PORT", type=int, help="Port (default 8000).")
@click.option("--workers", envvar="BIRDBALANCE_WORKERS", type=int, help="Worker processes.")
@click.option(
    "--demo/--no-demo",
    default=None,
    help="Create a demo account and keys on an empty database "
    "(default: only on the embedded default database).",
)
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, workers: int | None, demo: bool | None
) -> None:
    """Run the HTTP service (GET /balance, the admin API under /v1/)."""
    from birdbalance.server import generated_admin_token, run, seed_demo

    with _errors():
        settings = _settings(ctx).with_overrides(host=host, port=port, workers=workers)
    base = f"http://{settings.host}:{settings.port}"
    with _store(ctx) as store:
        want_demo = (not settings.database_url_explicit) if demo is None else demo
        if want_demo and store.count_accounts() == 0:
            shown = seed_demo(store)
            click.echo(
                f"Created demo account {shown.account_id} (prepaid, euros, 103 on each ledger)."
            )
            click.echo(f"  live key: {shown.live_key}")
            click.echo(f"  test key: {shown.test_key}")
            click.echo("  Keys are shown once; they are stored hashed. Try:")
            click.echo(f"  curl -s {base}/balance -H 'Authorization: AccessKey {shown.test_key}'")
    if settings.admin_token is None:
        with _errors():
            settings = settings.with_overrides(admin_token=generated_admin_token())
        click.echo(
            "BIRDBALANCE_ADMIN_TOKEN is not set; the admin API uses this token until you stop:"
        )
        click.echo(f"  {settings.admin_token}")
    shown_url = redacted_url(settings.database_url)
    click.echo(f"birdbalance serving {base} (database {shown_url})", err=False)
    click.echo(f"  dashboard: {base}/dashboard (sign in with an access key or the admin token)")
    sys.stdout.flush()
    run(settings)


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Bring the database schema up to date."""
    with _errors():
        store = open_store(_settings(ctx))
        try:
            applied = store.migrate()
            store.check_key_secret()
            current, _ = store.schema_version()
        finally:
            store.close()
    if applied:
        click.echo(f"applied {', '.join(applied)}; schema version {current}")
    else:
        click.echo(f"schema is up to date (version {current})")


@main.command()
@json_option
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Recompute every balance from its entries; exit 1 on any mismatch."""
    with _store(ctx) as store:
        problems = store.verify()
        ledgers = 2 * store.count_accounts()
    if as_json:
        _print_json({"ok": not problems, "ledgers": ledgers, "problems": problems})
    else:
        for problem in problems:
            click.echo(f"MISMATCH {problem}", err=True)
        if not problems:
            click.echo(f"ok: {ledgers} ledgers verified")
    if problems:
        ctx.exit(EXIT_ERROR)


# --------------------------------------------------------------------------- accounts


@main.group()
def accounts() -> None:
    """Create, list and show accounts."""


def _account_row(a: dict[str, Any]) -> list[Any]:
    return [
        a["id"],
        a["name"],
        a["payment"],
        a["type"],
        a["balances"]["live"]["amount"],
        a["balances"]["test"]["amount"],
        a["credit_limit"],
    ]


_ACCOUNT_HEADERS = ["id", "name", "payment", "type", "live", "test", "credit limit"]


@accounts.command("create")
@click.option("--payment", type=click.Choice(["prepaid", "postpaid"]), required=True)
@click.option("--type", "type_", required=True, help="credits, euros, pounds, dollars or ISO-4217.")
@click.option("--name")
@click.option("--credit-limit", help="Postpaid only: how far usage may go.")
@click.option("--idempotency-key")
@json_option
@click.pass_context
def accounts_create(
    ctx: click.Context,
    payment: str,
    type_: str,
    name: str | None,
    credit_limit: str | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Create an account (its live and test ledgers start at 0)."""
    body: dict[str, Any] = {"payment": payment, "type": type_}
    if name is not None:
        body["name"] = name
    if credit_limit is not None:
        body["credit_limit"] = credit_limit
    with _store(ctx) as store, _errors():
        account = Service(store).create_account(body, idempotency_key)
    if as_json:
        _print_json(account)
    else:
        _table(_ACCOUNT_HEADERS, [_account_row(account)])


@accounts.command("list")
@click.option("--limit", default="50", show_default=True)
@click.option("--cursor")
@click.option("--search", help="Exact id or part of the name.")
@json_option
@click.pass_context
def accounts_list(
    ctx: click.Context, limit: str, cursor: str | None, search: str | None, as_json: bool
) -> None:
    """List accounts, oldest first."""
    with _store(ctx) as store, _errors():
        page = Service(store).list_accounts(cursor=cursor, limit=limit, search=search)
    if as_json:
        _print_json(page)
        return
    _table(_ACCOUNT_HEADERS, [_account_row(a) for a in page["data"]])
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}")


@accounts.command("show")
@click.argument("account_id")
@json_option
@click.pass_context
def accounts_show(ctx: click.Context, account_id: str, as_json: bool) -> None:
    """Show one account with both balances."""
    with _store(ctx) as store, _errors():
        account = Service(store).get_account(account_id)
    if as_json:
        _print_json(account)
    else:
        _pairs(account)


# --------------------------------------------------------------------------- keys


@main.group()
def keys() -> None:
    """Create, list and revoke access keys."""


@keys.command("create")
@click.argument("account_id")
@click.option("--test", is_flag=True, help="A test_ key for the sandbox ledger.")
@click.option("--idempotency-key")
@json_option
@click.pass_context
def keys_create(
    ctx: click.Context, account_id: str, test: bool, idempotency_key: str | None, as_json: bool
) -> None:
    """Create an access key; its secret is printed this once."""
    with _store(ctx) as store, _errors():
        key = Service(store).create_key(
            account_id, {"mode": "test" if test else "live"}, idempotency_key
        )
    if as_json:
        _print_json(key)
    else:
        _pairs(key)
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
@json_option
@click.pass_context
def keys_list(ctx: click.Context, account_id: str, as_json: bool) -> None:
    """List an account's keys (never their secrets)."""
    with _store(ctx) as store, _errors():
        found = Service(store).list_keys(account_id)
    if as_json:
        _print_json(found)
    else:
        _table(_KEY_HEADERS, [_key_row(k) for k in found["data"]])


@keys.command("revoke")
@click.argument("key_id")
@json_option
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str, as_json: bool) -> None:
    """Revoke a key; it stops working at once."""
    with _store(ctx) as store, _errors():
        key = Service(store).revoke_key(key_id)
    if as_json:
        _print_json(key)
    else:
        _table(_KEY_HEADERS, [_key_row(key)])


@keys.command("rotate")
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
@json_option
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
    with _store(ctx) as store, _errors():
        rotated = Service(store).rotate_key(
            key_id, {"expires_in": str(expires_in_s)}, idempotency_key
        )
    if as_json:
        _print_json(rotated)
        return
    _pairs(rotated["key"])
    click.echo(f"{key_id} stops working at {rotated['previous']['expires_at']}", err=True)
    if "key" in rotated["key"]:
        click.echo("Store the key now: it is not shown again.", err=True)


# --------------------------------------------------------------------------- admin tokens


@main.group()
def tokens() -> None:
    """Admin API tokens with a scope: read (GET only) or write (everything)."""


_TOKEN_HEADERS = ["id", "name", "scope", "hint", "created", "revoked"]


def _token_row(t: dict[str, Any]) -> list[Any]:
    return [t["id"], t["name"], t["scope"], t["hint"], t["created_at"], t["revoked_at"]]


@tokens.command("create")
@click.option("--name", required=True, help="Who or what uses it (shown in the audit log).")
@click.option("--scope", type=click.Choice(["read", "write"]), required=True)
@json_option
@click.pass_context
def tokens_create(ctx: click.Context, name: str, scope: str, as_json: bool) -> None:
    """Create an admin token; it is printed this once."""
    with _store(ctx) as store, _errors():
        token = Service(store).create_token(name, scope)
    if as_json:
        _print_json(token)
    else:
        _pairs(token)
        click.echo("Store the token now: it is not shown again.", err=True)


@tokens.command("list")
@json_option
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """List admin tokens (never the tokens themselves)."""
    with _store(ctx) as store, _errors():
        found = Service(store).list_tokens()
    if as_json:
        _print_json(found)
    else:
        _table(_TOKEN_HEADERS, [_token_row(t) for t in found["data"]])


@tokens.command("revoke")
@click.argument("token_id")
@json_option
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke an admin token; it stops working at once, on every node."""
    with _store(ctx) as store, _errors():
        token = Service(store).revoke_token(token_id)
    if as_json:
        _print_json(token)
    else:
        _table(_TOKEN_HEADERS, [_token_row(token)])


@main.command()
@click.option("--limit", default="50", show_default=True)
@click.option("--cursor")
@click.option("--actor", help="Only this actor (a token id, admin-token, cli:<user>).")
@click.option("--action", help='Only this action, e.g. "DELETE /v1/keys/{key_id}".')
@json_option
@click.pass_context
def audit(
    ctx: click.Context,
    limit: str,
    cursor: str | None,
    actor: str | None,
    action: str | None,
    as_json: bool,
) -> None:
    """The audit log of admin actions, newest first."""
    with _store(ctx) as store, _errors():
        page = Service(store).list_audit(cursor=cursor, limit=limit, actor=actor, action=action)
    if as_json:
        _print_json(page)
        return
    _table(
        ["seq", "at", "actor", "action", "target", "address", "status"],
        [
            [r["seq"], r["at"], r["actor"], r["action"], r["target"], r["address"], r["status"]]
            for r in page["data"]
        ],
    )
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}", err=True)


# --------------------------------------------------------------------------- entries


def _entry_options(fn: F) -> F:
    options: list[Callable[[Any], Any]] = [
        click.argument("account_id"),
        click.argument("amount"),
        click.option("--reference"),
        click.option(
            "--idempotency-key",
            help="Makes a retry safe: the same key never writes twice (default: a new UUID).",
        ),
        click.option("--test", is_flag=True, help="Write to the sandbox ledger."),
        json_option,
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
    body: dict[str, Any] = {"amount": amount, "mode": "test" if test else "live", **extra}
    if reference is not None:
        body["reference"] = reference
    with _store(ctx) as store, _errors():
        posted = Service(store).post_entry(
            account_id, kind, body, idempotency_key or str(uuid.uuid4())
        )
    if as_json:
        _print_json(posted)
    else:
        _table(_ENTRY_HEADERS, [_entry_row(posted["entry"])])
        balance = posted["balance"]
        click.echo(f"balance ({balance['mode']}): {balance['amount']} {balance['type']}")


def _entry_command(kind: EntryKind, doc: str) -> Callable[..., None]:
    @_entry_options
    def command(ctx: click.Context, account_id: str, amount: str, **options: Any) -> None:
        _post(ctx, kind, account_id, amount, {}, **options)

    command.__doc__ = doc
    return command


main.command("topup")(_entry_command(EntryKind.TOPUP, "Add AMOUNT to an account's balance."))
main.command("charge")(
    _entry_command(EntryKind.CHARGE, "Charge AMOUNT; prepaid accounts never go below zero.")
)
main.command("adjust")(
    _entry_command(EntryKind.ADJUSTMENT, "Correct a balance by a signed AMOUNT (e.g. -- -1.5).")
)


@main.command("refund")
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
@click.option("--limit", default="50", show_default=True)
@click.option("--cursor")
@click.option("--kind", type=click.Choice([k.value for k in EntryKind]), help="Only this type.")
@click.option("--from", "start", help="Created at or after this RFC 3339 time.")
@click.option("--to", "end", help="Created before this RFC 3339 time.")
@click.option("--reference", help="Only entries with exactly this reference.")
@json_option
@click.pass_context
def history(
    ctx: click.Context,
    account_id: str,
    test: bool,
    limit: str,
    cursor: str | None,
    kind: str | None,
    start: str | None,
    end: str | None,
    reference: str | None,
    as_json: bool,
) -> None:
    """An account's entries, newest first (filtered by type, time and reference)."""
    with _store(ctx) as store, _errors():
        page = Service(store).list_entries(
            account_id,
            mode="test" if test else "live",
            cursor=cursor,
            limit=limit,
            kind=kind,
            start=start,
            end=end,
            reference=reference,
        )
    if as_json:
        _print_json(page)
        return
    _table(_ENTRY_HEADERS, [_entry_row(e) for e in page["data"]])
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}")


@main.command("balance-at")
@click.argument("account_id")
@click.argument("at")
@click.option("--test", is_flag=True, help="The sandbox ledger.")
@json_option
@click.pass_context
def balance_at(ctx: click.Context, account_id: str, at: str, test: bool, as_json: bool) -> None:
    """An account's balance at the RFC 3339 time AT (e.g. 2026-11-01T00:00:00Z)."""
    with _store(ctx) as store, _errors():
        found = Service(store).balance_at(account_id, at=at, mode="test" if test else "live")
    if as_json:
        _print_json(found)
    else:
        click.echo(f"{found['amount']} {found['type']} at {found['at']} (after seq {found['seq']})")


@main.command()
@click.argument("account_id")
@click.option("--from", "start", required=True, help="RFC 3339 start (inclusive).")
@click.option("--to", "end", help="RFC 3339 end (exclusive; default and latest: now).")
@click.option("--test", is_flag=True, help="The sandbox ledger.")
@click.option("--csv", "as_csv", is_flag=True, help="Every entry as CSV, with totals.")
@json_option
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
    with _store(ctx) as store, _errors():
        service = Service(store)
        if as_csv:
            _, chunks = service.statement_csv(account_id, start=start, end=end, mode=mode)
            for chunk in chunks:
                click.echo(chunk, nl=False)
            return
        found = service.statement(
            account_id, start=start, end=end, mode=mode, cursor=None, limit=str(MAX_PAGE_SIZE)
        )
    if as_json:
        _print_json(found)
        return
    click.echo(f"{found['from']} .. {found['to']} ({found['type']}, {found['mode']})")
    click.echo(f"opening balance {found['opening_balance']}")
    totals = ", ".join(f"{k} {v} ({found['counts'][k]})" for k, v in found["totals"].items())
    click.echo(f"totals          {totals}")
    click.echo(f"closing balance {found['closing_balance']}")
    if found["next_cursor"] is not None:
        click.echo(f"(more than {MAX_PAGE_SIZE} entries: --json pages them, --csv lists all)")


# --------------------------------------------------------------------------- holds


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
        _print_json(result)
        return
    _table(_HOLD_HEADERS, [_hold_row(result["hold"])])
    if "entry" in result:
        _table(_ENTRY_HEADERS, [_entry_row(result["entry"])])
        balance = result["balance"]
        click.echo(f"balance ({balance['mode']}): {balance['amount']} {balance['type']}")


_IDEMPOTENCY_HELP = "Makes a retry safe: the same key never writes twice (default: a new UUID)."


@holds.command("create")
@click.argument("account_id")
@click.argument("amount")
@click.option("--expires-in", "expires_in_s", type=int, help="Seconds (default 86400).")
@click.option("--reference")
@click.option("--idempotency-key", help=_IDEMPOTENCY_HELP)
@click.option("--test", is_flag=True, help="Hold on the sandbox ledger.")
@json_option
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
    with _store(ctx) as store, _errors():
        result = Service(store).create_hold(account_id, body, idempotency_key or str(uuid.uuid4()))
    _show_hold_result(result, as_json)


@holds.command("capture")
@click.argument("hold_id")
@click.argument("amount", required=False)
@click.option("--reference")
@click.option("--idempotency-key", help=_IDEMPOTENCY_HELP)
@json_option
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
    with _store(ctx) as store, _errors():
        result = Service(store).capture_hold(hold_id, body, idempotency_key or str(uuid.uuid4()))
    _show_hold_result(result, as_json)


@holds.command("void")
@click.argument("hold_id")
@click.option("--idempotency-key", help=_IDEMPOTENCY_HELP)
@json_option
@click.pass_context
def holds_void(
    ctx: click.Context, hold_id: str, idempotency_key: str | None, as_json: bool
) -> None:
    """Release a hold without charging anything."""
    with _store(ctx) as store, _errors():
        result = Service(store).void_hold(hold_id, {}, idempotency_key or str(uuid.uuid4()))
    _show_hold_result(result, as_json)


@holds.command("show")
@click.argument("hold_id")
@json_option
@click.pass_context
def holds_show(ctx: click.Context, hold_id: str, as_json: bool) -> None:
    """One hold."""
    with _store(ctx) as store, _errors():
        hold = Service(store).get_hold(hold_id)
    _show_hold_result({"hold": hold}, as_json)


@holds.command("list")
@click.argument("account_id")
@click.option("--test", is_flag=True, help="The sandbox ledger.")
@click.option("--status", type=click.Choice(["pending", "captured", "voided", "expired"]))
@click.option("--limit", default="50", show_default=True)
@click.option("--cursor")
@json_option
@click.pass_context
def holds_list(
    ctx: click.Context,
    account_id: str,
    test: bool,
    status: str | None,
    limit: str,
    cursor: str | None,
    as_json: bool,
) -> None:
    """An account's holds, newest first."""
    with _store(ctx) as store, _errors():
        page = Service(store).list_holds(
            account_id,
            mode="test" if test else "live",
            status=status,
            cursor=cursor,
            limit=limit,
        )
    if as_json:
        _print_json(page)
        return
    _table(_HOLD_HEADERS, [_hold_row(h) for h in page["data"]])
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}")


@holds.command("expire")
@click.pass_context
def holds_expire(ctx: click.Context) -> None:
    """Expire every hold that is due now (servers also do this every second)."""
    with _store(ctx) as store, _errors():
        count = 0
        while True:
            batch = store.expire_holds()
            count += batch
            if batch == 0:
                break
    click.echo(f"expired {count} holds")


# --------------------------------------------------------------------------- alerts


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


@alerts.command("add")
@click.argument("account_id")
@click.option("--below", required=True, help="balance.low fires once below this amount.")
@click.option("--hysteresis", help="balance.recovered needs below + this (default 0).")
@click.option("--test", is_flag=True, help="Watch the sandbox ledger.")
@click.option("--recharge", help="Also request a top-up of this amount (topup.requested).")
@click.option("--recharge-up-to", help="Also request a top-up back up to this amount.")
@click.option("--max-failures", type=int, help="Disable the recharge after N failures (3).")
@json_option
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
    with _store(ctx) as store, _errors():
        rule = Service(store).create_alert(account_id, body)
    if as_json:
        _print_json(rule)
    else:
        _table(_ALERT_HEADERS, [_alert_row(rule)])


@alerts.command("list")
@click.argument("account_id")
@json_option
@click.pass_context
def alerts_list(ctx: click.Context, account_id: str, as_json: bool) -> None:
    """An account's alert rules."""
    with _store(ctx) as store, _errors():
        rules = Service(store).list_alerts(account_id)
    if as_json:
        _print_json(rules)
    else:
        _table(_ALERT_HEADERS, [_alert_row(r) for r in rules["data"]])


@alerts.command("recharge-failed")
@click.argument("alert_id")
@click.option("--reason", help="Why the top-up failed (kept in the event).")
@json_option
@click.pass_context
def alerts_recharge_failed(
    ctx: click.Context, alert_id: str, reason: str | None, as_json: bool
) -> None:
    """Report that a requested top-up failed: ask again, or disable at max failures."""
    body = {} if reason is None else {"reason": reason}
    with _store(ctx) as store, _errors():
        rule = Service(store).recharge_failed(alert_id, body)
    if as_json:
        _print_json(rule)
    else:
        _table(_ALERT_HEADERS, [_alert_row(rule)])


@alerts.command("remove")
@click.argument("alert_id")
@json_option
@click.pass_context
def alerts_remove(ctx: click.Context, alert_id: str, as_json: bool) -> None:
    """Stop an alert rule (its past events remain)."""
    with _store(ctx) as store, _errors():
        rule = Service(store).delete_alert(alert_id)
    if as_json:
        _print_json(rule)
    else:
        click.echo(f"removed {rule['id']}")


@main.group()
def events() -> None:
    """The outbox: balance.low, balance.recovered, balance.depleted, credit_limit.reached."""


@events.command("list")
@click.option("--account", "account_id", help="Only this account's events.")
@click.option("--limit", default="50", show_default=True)
@click.option("--cursor")
@json_option
@click.pass_context
def events_list(
    ctx: click.Context, account_id: str | None, limit: str, cursor: str | None, as_json: bool
) -> None:
    """Events, newest first."""
    with _store(ctx) as store, _errors():
        page = Service(store).list_events(account_id=account_id, cursor=cursor, limit=limit)
    if as_json:
        _print_json(page)
        return
    rows = [
        [
            e["id"],
            e["type"],
            e["data"]["account_id"],
            e["data"]["mode"],
            e["data"]["available"],
            e["data"].get("threshold"),
            e["created_at"],
        ]
        for e in page["data"]
    ]
    _table(["id", "type", "account", "mode", "available", "threshold", "at"], rows)
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}")


@main.group()
def webhooks() -> None:
    """Where events go: signed POSTs, retried, then dead-lettered."""


_WEBHOOK_HEADERS = ["id", "url", "account", "events", "created at"]


def _webhook_row(w: dict[str, Any]) -> list[Any]:
    return [w["id"], w["url"], w["account_id"], ",".join(w["events"]) or "*", w["created_at"]]


@webhooks.command("add")
@click.argument("url")
@click.option("--account", "account_id", help="Only this account's events (default all).")
@click.option("--events", "event_types", help="Comma-separated types (default all).")
@json_option
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
    with _store(ctx) as store, _errors():
        created = Service(store).create_webhook(body)
    if as_json:
        _print_json(created)
        return
    _table(_WEBHOOK_HEADERS, [_webhook_row(created)])
    click.echo(f"secret (shown once): {created['secret']}")


@webhooks.command("list")
@json_option
@click.pass_context
def webhooks_list(ctx: click.Context, as_json: bool) -> None:
    """Every subscription."""
    with _store(ctx) as store, _errors():
        listed = Service(store).list_webhooks()
    if as_json:
        _print_json(listed)
    else:
        _table(_WEBHOOK_HEADERS, [_webhook_row(w) for w in listed["data"]])


@webhooks.command("remove")
@click.argument("webhook_id")
@click.pass_context
def webhooks_remove(ctx: click.Context, webhook_id: str) -> None:
    """Stop a subscription; its pending deliveries are dead-lettered."""
    with _store(ctx) as store, _errors():
        removed = Service(store).delete_webhook(webhook_id)
    click.echo(f"removed {removed['id']}")


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
@click.option("--status", type=click.Choice(["pending", "delivered", "dead"]))
@click.option("--webhook", "webhook_id")
@click.option("--limit", default="50", show_default=True)
@click.option("--cursor")
@json_option
@click.pass_context
def deliveries_list(
    ctx: click.Context,
    status: str | None,
    webhook_id: str | None,
    limit: str,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Deliveries, newest first."""
    with _store(ctx) as store, _errors():
        page = Service(store).list_deliveries(
            status=status, webhook_id=webhook_id, cursor=cursor, limit=limit
        )
    if as_json:
        _print_json(page)
        return
    _table(_DELIVERY_HEADERS, [_delivery_row(d) for d in page["data"]])
    if page["next_cursor"]:
        click.echo(f"more: --cursor {page['next_cursor']}")


@deliveries.command("redeliver")
@click.argument("delivery_id")
@json_option
@click.pass_context
def deliveries_redeliver(ctx: click.Context, delivery_id: str, as_json: bool) -> None:
    """Send a delivery again (a running server picks it up within a second)."""
    with _store(ctx) as store, _errors():
        delivery = Service(store).redeliver(delivery_id)
    if as_json:
        _print_json(delivery)
    else:
        _table(_DELIVERY_HEADERS, [_delivery_row(delivery)])


# --------------------------------------------------------------------------- operations


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.pass_context
def backup(ctx: click.Context, file: Path, force: bool) -> None:
    """Copy the SQLite database to FILE while it serves (a consistent snapshot)."""
    from birdbalance.backup import backup_sqlite

    with _errors():
        report = backup_sqlite(_settings(ctx), file, overwrite=force)
    click.echo(report)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database that already has accounts.")
@click.pass_context
def restore(ctx: click.Context, file: Path, force: bool) -> None:
    """Replace the SQLite database with the backup FILE (stop the servers first)."""
    from birdbalance.backup import restore_sqlite

    with _errors():
        report = restore_sqlite(_settings(ctx), file, replace_data=force)
    click.echo(report)


# --------------------------------------------------------------------------- client


def _access_key() -> str:
    """The key of the client commands: MESSAGEBIRD_ACCESS_KEY, as MessageBird's SDKs read it."""
    access_key = os.environ.get("MESSAGEBIRD_ACCESS_KEY", "")
    if not access_key:
        raise CLIUsageError("set MESSAGEBIRD_ACCESS_KEY to an access key")
    return access_key


def endpoint_options(fn: F) -> F:
    """``--base-url`` (any MessageBird-compatible endpoint) and ``--timeout``."""
    fn = click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True)(fn)
    return click.option(
        "--base-url",
        envvar="BIRDBALANCE_BASE_URL",
        default=DEFAULT_BASE_URL,
        show_default=True,
        help="Any MessageBird-compatible endpoint.",
    )(fn)


@main.command()
@endpoint_options
@json_option
def balance(base_url: str, timeout_s: float, as_json: bool) -> None:
    """GET /balance with the key in MESSAGEBIRD_ACCESS_KEY (works with MessageBird too)."""
    access_key = _access_key()
    with _errors(), Client(access_key, base_url, timeout_s=timeout_s) as client:
        result = client.balance()
    if as_json:
        # str() keeps the exact decimal; JSON gets it back as a number.
        click.echo(
            f'{{"payment":{json.dumps(result.payment)},"type":{json.dumps(result.type)},'
            f'"amount":{result.amount}}}'
        )
    else:
        click.echo(f"{result.amount} {result.type} ({result.payment})")


def _threshold(ctx: click.Context, param: click.Parameter, value: str) -> Decimal:
    try:
        parsed = Decimal(value)
    except ArithmeticError:
        raise click.BadParameter(f"{value!r} is not a number") from None
    if not parsed.is_finite():
        raise click.BadParameter(f"{value!r} is not a finite number")
    return parsed


class _PluginUsageError(click.UsageError):
    exit_code = 3


class _PluginCommand(click.Command):
    """A command whose usage errors exit 3: in a monitoring plugin, 2 means CRITICAL."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _PluginUsageError(exc.message, exc.ctx) from None


@main.command(cls=_PluginCommand)
@click.option("--warning", "-w", required=True, callback=_threshold, help="Warn below this.")
@click.option("--critical", "-c", required=True, callback=_threshold, help="Critical below.")
@endpoint_options
def check(warning: Decimal, critical: Decimal, base_url: str, timeout_s: float) -> None:
    """A Nagios-style check of the balance of MESSAGEBIRD_ACCESS_KEY's account.

    Prints one line and exits 0 (OK), 1 (WARNING: below --warning), 2 (CRITICAL: below
    --critical) or 3 (UNKNOWN: unreachable, key refused, postpaid, or bad arguments).
    """
    from birdbalance.check import Status
    from birdbalance.check import check as run_check

    access_key = os.environ.get("MESSAGEBIRD_ACCESS_KEY", "")
    if not access_key:
        click.echo("BALANCE UNKNOWN - set MESSAGEBIRD_ACCESS_KEY to an access key")
        sys.exit(Status.UNKNOWN)
    if critical > warning:
        click.echo("BALANCE UNKNOWN - --critical must not be above --warning")
        sys.exit(Status.UNKNOWN)
    try:
        result = run_check(access_key, warning, critical, base_url=base_url, timeout_s=timeout_s)
    except Exception as exc:  # noqa: BLE001 -- a plugin always gives one line and exit 3
        click.echo(f"BALANCE UNKNOWN - the check failed: {type(exc).__name__}")
        sys.exit(Status.UNKNOWN)
    click.echo(result.line)
    sys.exit(result.status)


def _amount(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    def one(text: str) -> Decimal:
        parsed = _threshold(ctx, param, text)
        if parsed < 0:
            raise click.BadParameter(f"{text!r} is negative")
        return parsed

    if value is None:
        return None
    return tuple(one(v) for v in value) if isinstance(value, tuple) else one(value)


@main.command()
@click.option("--below", multiple=True, callback=_amount, help="Alert below this (repeatable).")
@click.option("--hysteresis", default="0", callback=_amount, help="Recover above below + this.")
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(1, 86400),
    default=60.0,
    show_default=True,
    help="Seconds between polls.",
)
@click.option("--webhook", help="POST events here, signed with BIRDBALANCE_WATCH_WEBHOOK_SECRET.")
@click.option("--command", "command", help="Run this with each event's JSON on stdin.")
@click.option("--email", multiple=True, help="Mail events here (BIRDBALANCE_SMTP_*; repeatable).")
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="State file (default: one per endpoint and key in the user state dir).",
)
@click.option("--once", is_flag=True, help="Poll once, deliver, and exit (for cron).")
@endpoint_options
def watch(
    below: tuple[Decimal, ...],
    hysteresis: Decimal,
    interval_s: float,
    webhook: str | None,
    command: str | None,
    email: tuple[str, ...],
    state_path: Path | None,
    once: bool,
    base_url: str,
    timeout_s: float,
) -> None:
    """Poll the balance of MESSAGEBIRD_ACCESS_KEY and alert on threshold crossings.

    Raises balance.low once below each --below, balance.recovered once back above it
    (plus --hysteresis), and balance.depleted at zero, like the server's alert rules.
    Events go to --webhook (signed), --email, --command, and as JSON lines to stdout; the
    state file makes a restart neither repeat nor lose one.
    """
    import hashlib
    import shlex
    import signal
    import threading
    from datetime import UTC, datetime

    import platformdirs

    from birdbalance.watch import (
        MAX_RULES,
        Channel,
        CommandChannel,
        EmailChannel,
        Rule,
        WatchError,
        WebhookChannel,
        deliver,
        load_state,
        observe,
        save_state,
    )

    access_key = _access_key()
    if len(below) > MAX_RULES:
        raise CLIUsageError(f"at most {MAX_RULES} --below thresholds")
    channels: list[Channel] = []
    if webhook is not None:
        secret = os.environ.get("BIRDBALANCE_WATCH_WEBHOOK_SECRET", "")
        if len(secret) < 16:
            raise CLIUsageError(
                "--webhook needs BIRDBALANCE_WATCH_WEBHOOK_SECRET (16+ characters) to sign with"
            )
        channels.append(WebhookChannel(webhook, secret, timeout_s))
    if command is not None:
        channels.append(CommandChannel(shlex.split(command)))
    if email:
        from birdbalance.mail import MAX_RECIPIENTS, MailError, SMTPSettings, is_address

        bad = [a for a in email if not is_address(a)]
        if bad or len(email) > MAX_RECIPIENTS:
            raise CLIUsageError(f"--email takes 1..{MAX_RECIPIENTS} plain addresses: {bad}")
        try:
            smtp = SMTPSettings.from_env(os.environ)
        except MailError as exc:
            raise CLIUsageError(str(exc)) from None
        if smtp is None:
            raise CLIUsageError("--email needs BIRDBALANCE_SMTP_HOST and BIRDBALANCE_SMTP_FROM")
        signing = os.environ.get("BIRDBALANCE_WATCH_WEBHOOK_SECRET") or None
        channels.append(EmailChannel(smtp, list(email), signing))
    if state_path is None:
        # One file per endpoint and key; the key itself is never written anywhere.
        tag = hashlib.sha256(f"{base_url}\n{access_key}".encode()).hexdigest()[:16]
        state_path = Path(platformdirs.user_state_dir("birdbalance")) / f"watch-{tag}.json"
    rules = [Rule(b, hysteresis) for b in sorted(set(below), reverse=True)]
    source = {"source": base_url, "key_hint": access_key[-4:]}
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def log(message: str) -> None:
        click.echo(f"watch: {message}", err=True)

    def save(state: Any) -> None:
        save_state(state_path, state)

    with _errors():
        try:
            state = load_state(state_path)
        except WatchError as exc:
            raise CLIError(str(exc)) from None
    names = [c.name for c in channels]
    failed = False
    with Client(access_key, base_url, timeout_s=timeout_s) as client:
        while not stop.is_set():
            try:
                balance = client.balance()
            except ClientError as exc:
                log(f"could not read the balance: {type(exc).__name__}: {exc}")
                failed = True
            else:
                failed = False
                try:
                    events = observe(state, balance, rules, names, source, datetime.now(UTC))
                except WatchError as exc:
                    raise CLIError(str(exc)) from None
                save(state)  # before sending: a crash now loses nothing
                for event in events:
                    click.echo(json.dumps(event, separators=(",", ":")))
            deliver(state, channels, save, log)
            if once:
                break
            stop.wait(interval_s)
    if once and failed:
        sys.exit(1)
