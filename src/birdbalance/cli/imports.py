"""``birdbalance import FILE``: a file of ledger operations posted through bulk requests,
resumable, with progress (see :mod:`birdbalance.imports` for the file's format)."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, TextIO

import click

from birdbalance.bulk_requests import read_operation
from birdbalance.cli.base import FAILED_STATUS, Audited, CLIError, CLIUsageError, store_of
from birdbalance.cli.output import ProgressBar, output_option, print_json, print_pairs
from birdbalance.cli.root import main
from birdbalance.errors import ServiceError, ServiceUnavailable
from birdbalance.imports import (
    Line,
    batches,
    csv_header_problem,
    read_csv,
    read_jsonl,
    refused_by,
)
from birdbalance.service import Service
from birdbalance.storage import MAX_BULK_OPERATIONS

_LINKED: Final = re.compile(r"not applied: operation (?P<index>\d+) of its linked group failed")
#: Tries of one batch the database refused for now (busy, unavailable), and the pauses.
MAX_BATCH_TRIES: Final = 8
MAX_PAUSE_S: Final = 10.0
#: Refused lines named on stderr (all of them are in --json's answer).
MAX_LINES_SHOWN: Final = 20


@main.command("import", cls=Audited)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["auto", "csv", "jsonl"]),
    default="auto",
    show_default=True,
    help="auto: by the file's extension (.csv, else JSON lines).",
)
@click.option(
    "--batch",
    type=click.IntRange(1, MAX_BULK_OPERATIONS),
    default=MAX_BULK_OPERATIONS,
    show_default=True,
    help="Operations per bulk request.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Judge every line and write nothing (each batch alone, against the ledgers now).",
)
@output_option
@click.pass_context
def import_file(
    ctx: click.Context, file: Path, file_format: str, batch: int, dry_run: bool, as_json: bool
) -> None:
    """Post FILE's ledger operations (CSV or JSON lines, one per line), each exactly once.

    Each line is an operation of POST /v1/bulk: top-ups, charges, refunds, adjustments,
    holds, captures and voids. A line without an idempotency_key gets one from its number
    and its text, so running the same file again (after a crash, or to be sure) posts
    only what is not posted yet. Exit status 1 if any line was refused.
    """
    if not file.is_file():
        raise CLIUsageError(f"{file}: no such file")
    if file_format == "auto":
        file_format = "csv" if file.suffix.lower() == ".csv" else "jsonl"
    total = _count_lines(file) - (file_format == "csv")  # the header
    counts = {"lines": 0, "posted": 0, "replayed": 0, "refused": 0}
    refusals: list[dict[str, Any]] = []
    with store_of(ctx) as store, file.open(encoding="utf-8", newline="") as text:
        service = Service(store)
        progress = ProgressBar(file.name, "lines")
        try:
            for to_post, refused_here in batches(
                _checked(_lines(text, file_format)), batch, MAX_BULK_OPERATIONS
            ):
                if to_post:
                    _post(service, to_post, dry_run)
                for line in sorted([*to_post, *refused_here], key=lambda x: x.number):
                    _count(line, counts, refusals)
                progress.show(counts["lines"], total)
        except UnicodeDecodeError as exc:
            raise CLIUsageError(f"{file} is not UTF-8 text ({exc.reason})") from None
        finally:
            progress.show(counts["lines"], total, final=True)
        if counts["refused"]:
            ctx.meta[FAILED_STATUS] = 422
    if as_json:
        print_json({**counts, "dry_run": dry_run, "refused_lines": refusals})
    else:
        print_pairs({name: f"{value:,}" for name, value in counts.items()})
        for refusal in refusals[:MAX_LINES_SHOWN]:
            error = refusal["errors"][0]
            click.echo(
                f"line {refusal['line']}: {refusal['status']} {error['description']}", err=True
            )
        if len(refusals) > MAX_LINES_SHOWN:
            click.echo(
                f"... and {len(refusals) - MAX_LINES_SHOWN:,} more refused lines"
                " (--json lists them all)",
                err=True,
            )
    if counts["refused"]:
        ctx.exit(1)


def _lines(text: TextIO, file_format: str) -> Iterator[Line]:
    if file_format == "jsonl":
        return read_jsonl(text)
    first = text.readline()
    problem = csv_header_problem(next(csv.reader([first]), []))
    if problem is not None:
        raise CLIUsageError(f"the CSV header: {problem}")
    return read_csv(itertools.chain([first], text))


def _checked(lines: Iterable[Line]) -> Iterator[Line]:
    """Each operation checked by the bulk request's own model before it is sent, so one
    bad line is its own error rather than its whole request's."""
    for line in lines:
        if line.operation is not None:
            try:
                read_operation(line.operation)
            except ServiceError as exc:
                line.problem = exc.description
        yield line


def _post(service: Service, lines: list[Line], dry_run: bool) -> None:
    operations = [line.operation for line in lines]
    body = json.dumps({"operations": operations, "dry_run": dry_run}).encode()
    keys = "\n".join(str(op["idempotency_key"]) for op in operations if op is not None)
    request_key = (
        None if dry_run else "import-batch-" + hashlib.sha256(keys.encode()).hexdigest()[:48]
    )
    pause_s = 0.1
    for tries in range(1, MAX_BATCH_TRIES + 1):
        try:
            posted = service.post_bulk(body, request_key)
            break
        except ServiceUnavailable as exc:
            if tries == MAX_BATCH_TRIES:
                raise CLIError(
                    f"the database refused a batch {tries} times ({exc.description}); lines"
                    f" {lines[0].number}-{lines[-1].number} and later were not posted: run the"
                    " same command again to go on"
                ) from None
            time.sleep(pause_s)
            pause_s = min(MAX_PAUSE_S, pause_s * 2)
        except ServiceError as exc:  # the request itself refused: every line says why
            for line in lines:
                refused_by(line, exc)
            return
    for line, result in zip(lines, json.loads(posted.answer)["results"], strict=True):
        if posted.replayed and result["status"] == 201:
            result["replayed"] = True  # this batch was posted whole by an earlier run
        for error in result.get("errors", []):
            linked = _LINKED.fullmatch(error["description"])
            if linked is not None and error["parameter"] == "linked":
                number = lines[int(linked["index"])].number
                error["description"] = f"not applied: line {number} of its linked group failed"
        line.result = result


def _count(line: Line, counts: dict[str, int], refusals: list[dict[str, Any]]) -> None:
    counts["lines"] += 1
    result = line.result
    if result.get("status") == 201:
        counts["replayed" if result.get("replayed") else "posted"] += 1
        return
    counts["refused"] += 1
    refusals.append({"line": line.number, "status": result["status"], "errors": result["errors"]})


def _count_lines(file: Path) -> int:
    with file.open("rb") as raw:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: raw.read(1 << 20), b""))
