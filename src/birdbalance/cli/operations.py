"""Running and keeping the service: ``serve``, ``migrate``, ``verify``, ``backup``,
``restore``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from birdbalance.cli.base import EXIT_ERROR, reported_errors, settings_of, store_of
from birdbalance.cli.output import (
    ProgressBar,
    StagedProgress,
    output_option,
    print_json,
    progress,
)
from birdbalance.cli.root import main
from birdbalance.settings import redacted_url
from birdbalance.storage import open_store

#: What backup and restore show for each stage of their work.
_COPY_STAGES = {
    "copy": ("copying", "pages"),
    "integrity": ("checking integrity", ""),
    "verify": ("verifying", "accounts"),
}


def _staged(run: Callable[[StagedProgress], str]) -> str:
    """``run``'s report, its stages shown as they go, and its errors as the CLI's."""
    stages = StagedProgress(_COPY_STAGES)
    with reported_errors():
        try:
            return run(stages)
        finally:
            stages.close()
    raise AssertionError("reported_errors() exits on every error")  # pragma: no cover


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

    with reported_errors():
        settings = settings_of(ctx).with_overrides(host=host, port=port, workers=workers)
    base = f"http://{settings.host}:{settings.port}"
    with store_of(ctx) as store:
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
        with reported_errors():
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
    with reported_errors():
        store = open_store(settings_of(ctx))
        try:
            with progress("migrating"):
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
@output_option
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Recompute every balance from its entries; exit 1 on any mismatch."""
    with store_of(ctx) as store:
        bar = ProgressBar("verifying", "accounts")
        shown = [0, 0]

        def advance(done: int, total: int) -> None:
            shown[:] = [done, total]
            bar.show(done, total)

        problems = store.verify(advance)
        bar.show(*shown, final=True)
        ledgers = 2 * shown[0]
    if as_json:
        print_json({"ok": not problems, "ledgers": ledgers, "problems": problems})
    else:
        for problem in problems:
            click.echo(f"MISMATCH {problem}", err=True)
        if not problems:
            click.echo(f"ok: {ledgers} ledgers verified")
    if problems:
        ctx.exit(EXIT_ERROR)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.pass_context
def backup(ctx: click.Context, file: Path, force: bool) -> None:
    """Copy the SQLite database to FILE while it serves (a consistent snapshot)."""
    from birdbalance.backup import backup_sqlite

    settings = settings_of(ctx)
    click.echo(
        _staged(lambda stages: backup_sqlite(settings, file, overwrite=force, progress=stages))
    )


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database that already has accounts.")
@click.pass_context
def restore(ctx: click.Context, file: Path, force: bool) -> None:
    """Replace the SQLite database with the backup FILE (stop the servers first)."""
    from birdbalance.backup import restore_sqlite

    settings = settings_of(ctx)
    click.echo(
        _staged(lambda stages: restore_sqlite(settings, file, replace_data=force, progress=stages))
    )
