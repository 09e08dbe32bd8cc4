"""The CLI's plumbing: its errors, the store a command works on (and the audit record
of what it changed), and its output."""

from __future__ import annotations

import getpass
import hashlib
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import click

from birdbalance.errors import (
    APIError,
    BirdbalanceError,
    ClientError,
    ServiceError,
    SettingsError,
)
from birdbalance.records import AuditRecord
from birdbalance.settings import Settings
from birdbalance.storage import MAX_PAGE_SIZE, Store, open_store

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 1

EXIT_USAGE = 2

#: Longest --base-url taken (it goes into every event ``watch`` writes and sends).
MAX_BASE_URL_CHARS: Final = 500


class CLIError(click.ClickException, BirdbalanceError):
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
def reported_errors() -> Iterator[None]:
    try:
        yield
    except ServiceError as exc:
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.meta[FAILED_STATUS] = exc.status_code
        raise CLIError(_describe(exc)) from None
    except SettingsError as exc:
        raise CLIUsageError(str(exc)) from None
    except APIError as exc:
        raise CLIError(str(exc)) from None
    except ClientError as exc:
        raise CLIError(str(exc)) from None


def settings_of(ctx: click.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


class Audited(click.Command):
    """A command that changes something: each run is a record in the audit log (who,
    from where, on what, and how it ended). Declared on the command: ``cls=Audited``."""


_TARGET_PARAMS: Final = (
    "account_id",
    "from_id",
    "key_id",
    "hold_id",
    "alert_id",
    "webhook_id",
    "delivery_id",
    "token_id",
)

FAILED_STATUS: Final = "birdbalance.failed_status"


def _audit_command(ctx: click.Context, store: Store, status: int) -> None:
    """Record a command that changes something: who ran it, where, and how it ended."""
    if not isinstance(ctx.command, Audited):
        return
    command = ctx.command_path.partition(" ")[2]
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
def store_of(ctx: click.Context) -> Iterator[Store]:
    from birdbalance.server import ensure_schema

    with reported_errors():
        store = open_store(settings_of(ctx))
        try:
            ensure_schema(store)
            try:
                yield store
            except CLIError:
                _audit_command(ctx, store, ctx.meta.get(FAILED_STATUS, 500))
                raise
            _audit_command(ctx, store, 200)
        finally:
            store.close()


def reference_key(reference: str | None, *write: str) -> str:
    """The idempotency key of a CLI write: one per ``reference`` and what the write is
    (its kind, accounts, mode), so a re-run of the same command replays it; a new one
    each time without a reference."""
    if reference is None:
        return str(uuid.uuid4())
    digest = hashlib.sha256("\n".join([*write, reference]).encode())
    return f"cli-{digest.hexdigest()[:40]}"


def limit_option(fn: F) -> F:
    """``--limit``: a page size, checked by click (1 to the store's maximum)."""
    return click.option(
        "--limit",
        type=click.IntRange(1, MAX_PAGE_SIZE),
        default=50,
        show_default=True,
        help=f"Items per page (1-{MAX_PAGE_SIZE}).",
    )(fn)
