"""The ``birdbalance`` command group: settings from ``BIRDBALANCE_*``, one per run."""

from __future__ import annotations

import click

from birdbalance.cli.base import reported_errors
from birdbalance.config import load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--database-url",
    envvar="BIRDBALANCE_DATABASE_URL",
    help="sqlite:///path.db (default: a file in the user's data directory) or"
    " postgresql://user@host/db.",
)
@click.option(
    "--config",
    "config",
    metavar="FILE",
    help="A TOML file of settings (default: BIRDBALANCE_CONFIG); BIRDBALANCE_* variables"
    " override it. See deploy/birdbalance.toml.",
)
@click.version_option(package_name="birdbalance")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, config: str | None) -> None:
    """birdbalance: MessageBird-compatible balances on an append-only ledger."""
    with reported_errors():
        ctx.obj = load_settings(config).with_overrides(database_url=database_url)
