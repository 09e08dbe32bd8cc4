"""Client commands for any MessageBird-compatible endpoint: ``balance``, ``check``
(a Nagios plugin) and ``watch`` (alerts by polling)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from birdbalance.cli.base import MAX_BASE_URL_CHARS, CLIError, CLIUsageError, F, reported_errors
from birdbalance.cli.output import output_option
from birdbalance.cli.root import main
from birdbalance.endpoint import DEFAULT_BASE_URL
from birdbalance.errors import (
    MailError,
)


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
@output_option
def balance(base_url: str, timeout_s: float, as_json: bool) -> None:
    """GET /balance with the key in MESSAGEBIRD_ACCESS_KEY (works with MessageBird too)."""
    access_key = _access_key()
    from birdbalance.client import Client

    with reported_errors(), Client(access_key, base_url, timeout_s=timeout_s) as client:
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


def _plugin_range(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from birdbalance.thresholds import RangeError, parse_range

    try:
        return parse_range(value)
    except RangeError as exc:
        raise click.BadParameter(str(exc)) from None


class _PluginCommand(click.Command):
    """A monitoring plugin's command line: usage and errors go to stdout as one UNKNOWN
    line (exit 3; 2 would mean CRITICAL), where the monitoring system shows them."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            usage = " ".join(self.get_usage(ctx).split())
            click.echo(f"BALANCE UNKNOWN - {exc.format_message()} ({usage})")
            sys.exit(3)


def _plugin_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        from birdbalance import __version__

        click.echo(f"birdbalance check v{__version__}")
        sys.exit(3)


_RANGES = "a range: 20: (below 20), ~:10 (above 10), 10:20 (outside), @10:20 (inside)"


@main.command(cls=_PluginCommand)
@click.option("--warning", "-w", required=True, callback=_plugin_range, help=f"Warn in {_RANGES}.")
@click.option("--critical", "-c", required=True, callback=_plugin_range, help="Critical range.")
@click.option(
    "--base-url",
    envvar="BIRDBALANCE_BASE_URL",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="Any MessageBird-compatible endpoint.",
)
@click.option("--timeout", "-t", "timeout_s", type=float, default=10.0, show_default=True)
@click.option(
    "--version",
    "-V",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_plugin_version,
    help="Print the version and exit 3, as monitoring plugins do.",
)
def check(warning: Any, critical: Any, base_url: str, timeout_s: float) -> None:
    """A monitoring plugin (Nagios, Icinga, Naemon…) for MESSAGEBIRD_ACCESS_KEY's balance.

    Prints one line and exits 0 (OK), 1 (WARNING: in the --warning range), 2 (CRITICAL)
    or 3 (UNKNOWN: unreachable, key refused, postpaid, or bad arguments). A bare number
    means "at least": -w 20 warns below 20.
    """
    from birdbalance.check import Status, check as run_check

    access_key = os.environ.get("MESSAGEBIRD_ACCESS_KEY", "")
    if not access_key:
        click.echo("BALANCE UNKNOWN - set MESSAGEBIRD_ACCESS_KEY to an access key")
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
    import shlex
    import signal
    import threading

    import platformdirs

    from birdbalance.watch import (
        MAX_RULES,
        Channel,
        CommandChannel,
        EmailChannel,
        Rule,
        Watch,
        WatchError,
        WebhookChannel,
        run,
    )

    access_key = _access_key()
    if len(below) > MAX_RULES:
        raise CLIUsageError(f"at most {MAX_RULES} --below thresholds")
    if len(base_url) > MAX_BASE_URL_CHARS:
        raise CLIUsageError(f"--base-url is longer than {MAX_BASE_URL_CHARS} characters")
    stop = threading.Event()
    channels: list[Channel] = []
    if webhook is not None:
        secret = os.environ.get("BIRDBALANCE_WATCH_WEBHOOK_SECRET", "")
        if len(secret) < 16:
            raise CLIUsageError(
                "--webhook needs BIRDBALANCE_WATCH_WEBHOOK_SECRET (16+ characters) to sign with"
            )
        channels.append(WebhookChannel(webhook, secret, timeout_s))
    if command is not None:
        channels.append(CommandChannel(shlex.split(command), stop=stop))
    if email:
        from birdbalance.mail import MAX_RECIPIENTS, SMTPSettings, is_address

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
        channels.append(EmailChannel(smtp, list(email), signing, timeout_s))
    if state_path is None:
        # One file per endpoint and key; the key itself is never written anywhere.
        tag = hashlib.sha256(f"{base_url}\n{access_key}".encode()).hexdigest()[:16]
        state_path = Path(platformdirs.user_state_dir("birdbalance")) / f"watch-{tag}.json"
    setup = Watch(
        rules=[Rule(b, hysteresis) for b in sorted(set(below), reverse=True)],
        channels=channels,
        source={"source": base_url, "key_hint": access_key[-4:]},
        state_path=state_path,
        interval_s=interval_s,
        timeout_s=timeout_s,
    )

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():  # asked twice: go now (the state file is always whole)
            os._exit(128 + signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    def log(message: str) -> None:
        click.echo(f"watch: {message}", err=True)

    from birdbalance.client import Client

    with Client(access_key, base_url, timeout_s=timeout_s) as client:
        try:
            judged = run(setup, client.balance, once=once, stop=stop, emit=click.echo, log=log)
        except WatchError as exc:
            raise CLIError(str(exc)) from None
    if once and not judged:
        sys.exit(1)
