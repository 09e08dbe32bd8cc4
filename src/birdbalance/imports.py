"""The lines of a file for ``birdbalance import``, as bulk operations (no I/O).

A file holds one ledger operation per line, with the fields of a ``POST /v1/bulk``
operation (``docs/api.md``): JSON lines (an object per line), or CSV with a header naming
its columns (any of :data:`CSV_COLUMNS`; an empty cell is an absent field, ``metadata``
is a JSON object, ``linked`` is ``true``/``false``). Blank lines are skipped.

Each line carries an idempotency key: its own ``idempotency_key``, or one derived from its
line number and its text, so a second run of the same file replays every line the first
one posted and posts only the rest: each line exactly once, however often the import is
run or wherever it stopped.

:func:`batches` cuts the lines into requests of at most ``size`` operations without
splitting a linked group. A line that cannot be read fails the linked group it is in, as
a refused operation fails its group in a bulk request.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from birdbalance.errors import ServiceError

#: Longest line read; a longer one is that line's error.
MAX_LINE_CHARS: Final = 64 * 1024
#: The columns a CSV file may have (its header names some of them, in any order).
CSV_COLUMNS: Final = (
    "type",
    "account",
    "hold",
    "amount",
    "mode",
    "reference",
    "charge",
    "expires_in",
    "metadata",
    "linked",
    "idempotency_key",
)
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"", "false", "0", "no"})


@dataclass(slots=True)
class Line:
    """One line of the file: its number (from 1), and its operation or what is wrong."""

    number: int
    operation: dict[str, Any] | None = None
    problem: str | None = None
    #: Filled in by the import: the operation's result (status, errors).
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def linked(self) -> bool:
        return self.operation is not None and self.operation.get("linked") is True


def line_key(number: int, text: str) -> str:
    """The idempotency key of a line that gives none: its number and its text."""
    digest = hashlib.sha256(f"{number}\n{text}".encode()).hexdigest()
    return f"import-{digest[:48]}"


def read_jsonl(lines: Iterable[str]) -> Iterator[Line]:
    """JSON lines: an object per line, the bulk operation's fields."""
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        if len(text) > MAX_LINE_CHARS:
            yield Line(number, problem=f"the line is longer than {MAX_LINE_CHARS} characters")
            continue
        try:
            operation = json.loads(text)
        except (ValueError, RecursionError):
            yield Line(number, problem="the line is not a JSON object")
            continue
        if not isinstance(operation, dict):
            yield Line(number, problem="the line is not a JSON object")
            continue
        if "idempotency_key" not in operation:
            operation["idempotency_key"] = line_key(number, text)
        yield Line(number, operation)


def csv_header_problem(header: list[str]) -> str | None:
    """What is wrong with a CSV file's header, if anything (the whole file is refused)."""
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown:
        return f"unknown column {unknown[0][:40]!r}; the columns are {', '.join(CSV_COLUMNS)}"
    if len(set(header)) != len(header):
        return "a column is named twice"
    if "type" not in header:
        return "the header must name a type column"
    return None


def read_csv(lines: Iterable[str]) -> Iterator[Line]:
    """CSV whose first row names the columns; call :func:`csv_header_problem` on it first."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    assert csv_header_problem(header) is None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a NUL, a field past csv's own limit: that line's error
            yield Line(reader.line_num, problem=f"the line is not CSV ({exc})"[:200])
            continue
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if sum(len(cell) for cell in row) > MAX_LINE_CHARS:
            yield Line(number, problem=f"the line is longer than {MAX_LINE_CHARS} characters")
            continue
        if len(row) != len(header):
            yield Line(number, problem=f"the line has {len(row)} cells, the header {len(header)}")
            continue
        try:
            operation = _csv_operation(dict(zip(header, row, strict=True)))
        except ValueError as exc:
            yield Line(number, problem=str(exc))
            continue
        if "idempotency_key" not in operation:
            operation["idempotency_key"] = line_key(number, "\x1f".join(row))
        yield Line(number, operation)


def _csv_operation(cells: dict[str, str]) -> dict[str, Any]:
    operation: dict[str, Any] = {}
    for name, cell in cells.items():
        if name == "linked":
            value = cell.strip().lower()
            if value not in _TRUE | _FALSE:
                raise ValueError("linked must be true or false")
            if value in _TRUE:
                operation["linked"] = True
        elif cell == "":
            continue
        elif name == "metadata":
            try:
                metadata = json.loads(cell)
            except (ValueError, RecursionError):
                metadata = None
            if not isinstance(metadata, dict):
                raise ValueError("metadata must be a JSON object")
            operation["metadata"] = metadata
        else:
            operation[name] = cell
    return operation


def refused(line: Line, status: int, description: str, parameter: str | None) -> None:
    """Record on ``line`` that it was not posted, and why."""
    line.result = {
        "status": status,
        "errors": [{"code": 10, "description": description, "parameter": parameter}],
    }


def refused_by(line: Line, error: ServiceError) -> None:
    line.result = {"status": error.status_code, **error.to_body()}


def batches(
    lines: Iterable[Line], size: int, max_size: int
) -> Iterator[tuple[list[Line], list[Line]]]:
    """Requests of at most ``size`` operations (``max_size`` for a long linked group),
    never splitting a linked group: each as (the lines to post, the lines refused here,
    already marked). A linked group with a line that cannot be read, one longer than
    ``max_size``, or one the file ends inside, is refused here whole."""
    assert 1 <= size <= max_size
    batch: list[Line] = []
    kept: list[Line] = []  # refused here, reported with the next batch
    group: list[Line] = []
    for line in lines:
        group.append(line)
        if line.problem is not None:
            _refuse_group(group, line)
            kept.extend(group)
            group = []
            continue
        if len(group) > max_size:
            for member in group:
                refused(
                    member, 422, f"its linked group is longer than {max_size} operations", "linked"
                )
            kept.extend(group)
            group = []
            continue
        if line.linked:
            continue
        if len(batch) + len(group) > max_size:
            yield batch, kept
            batch, kept = [], []
        batch.extend(group)
        group = []
        if len(batch) >= size:
            yield batch, kept
            batch, kept = [], []
    for member in group:
        refused(member, 422, "the file ends inside a linked group", "linked")
    kept.extend(group)
    if batch or kept:
        yield batch, kept


def _refuse_group(group: list[Line], bad: Line) -> None:
    assert bad.problem is not None
    for member in group:
        if member is bad:
            refused(member, 422, bad.problem, None)
        else:
            refused(
                member,
                409,
                f"not posted: line {bad.number} of its linked group cannot be read",
                "linked",
            )
