"""The CLI's one output layer: ``--output table|json|csv`` (``--json`` is kept as an alias).

- ``table`` (the default): for a person. On a terminal, tables are drawn by ``rich``
  (imported only then, so ``--help`` stays fast); piped, they are plain columns separated
  by two spaces, one row per line, stable for ``grep`` and ``awk``.
- ``json``: the admin API's JSON, indented.
- ``csv``: a header row, then one row per item (RFC 4180, via :mod:`csv`).

Notes meant for a person (``more: --cursor …``, a balance after a write) go to stdout
with tables and to stderr with JSON or CSV, so that those stay machine-readable.
Long commands show progress on stderr when it is a terminal, and nothing otherwise.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
OUTPUTS: Final = ("table", "json", "csv")
#: Seconds between progress lines when stderr is not a terminal (a log, a pipe).
PROGRESS_EVERY_S: Final = 10.0
_MODE: Final = "birdbalance.output"


def output_option(fn: F) -> F:
    """``--output``/``-o`` and ``--json``; the command gets ``as_json`` as before, and
    :func:`print_table` and :func:`print_pairs` follow the chosen format."""

    @functools.wraps(fn)
    def command(*args: Any, output: str, as_json: bool, **kwargs: Any) -> Any:
        mode = "json" if as_json else output
        click.get_current_context().meta[_MODE] = mode
        return fn(*args, as_json=mode == "json", **kwargs)

    command = click.option("--json", "as_json", is_flag=True, help="Same as --output json.")(
        command
    )
    command = click.option(
        "--output",
        "-o",
        type=click.Choice(OUTPUTS),
        default="table",
        show_default=True,
        help="table (for people), json, or csv.",
    )(command)
    return command  # type: ignore[return-value]


def output_mode() -> str:
    """The format the running command prints in (``table`` outside a command)."""
    ctx = click.get_current_context(silent=True)
    return "table" if ctx is None else str(ctx.find_root().meta.get(_MODE, "table"))


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Rows in the chosen format (``table`` or ``csv``)."""
    cells = [[_text(c) for c in row] for row in rows]
    if output_mode() == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([h.replace(" ", "_") for h in headers])
        writer.writerows(cells)
        return
    if sys.stdout.isatty():
        _rich_table(headers, cells)
        return
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _rich_table(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in headers:
        table.add_column(header.upper(), overflow="fold")
    for row in cells:
        table.add_row(*row)
    Console().print(table)


def print_page(
    page: dict[str, Any],
    as_json: bool,
    headers: Sequence[str],
    row: Callable[[dict[str, Any]], Sequence[Any]],
) -> None:
    """A page of a listing: its JSON, or its items as rows in the chosen format followed
    by the note that asks for the next page."""
    if as_json:
        print_json(page)
        return
    print_table(headers, [row(item) for item in page["data"]])
    if page["next_cursor"]:
        note(f"more: --cursor {page['next_cursor']}")


def print_pairs(value: dict[str, Any]) -> None:
    """One record: ``key  value`` lines, or a CSV header and one row."""
    if output_mode() == "csv":
        print_table(list(value), [list(value.values())])
        return
    width = max(len(k) for k in value)
    for key, item in value.items():
        click.echo(f"{key.ljust(width)}  {_text(item)}")


def note(text: str) -> None:
    """A line for a person: with the table, or on stderr beside JSON or CSV."""
    click.echo(text, err=output_mode() != "table")


@contextmanager
def progress(label: str) -> Iterator[None]:
    """Show ``label``, a spinner and the time spent on stderr while the block runs, when
    stderr is a terminal; nothing otherwise (logs and pipes get only the result)."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    started = time.monotonic()
    with Console(stderr=True).status(label):
        yield
    click.echo(f"{label}: {time.monotonic() - started:.1f} s", err=True)


class ProgressBar:
    """How far a long command is, on stderr: a bar redrawn in place on a terminal, and
    elsewhere (a log, a pipe) a line every :data:`PROGRESS_EVERY_S`, so that a job's log
    shows it is alive without filling up."""

    def __init__(self, label: str, unit: str) -> None:
        self._label = label
        self._unit = unit
        self._started = time.monotonic()
        self._tty = sys.stderr.isatty()
        # A terminal shows the bar at once; a log gets its first line after the interval.
        self._shown_at: float | None = None if self._tty else self._started

    def show(self, done: int, total: int, *, final: bool = False) -> None:
        """``done`` of ``total`` units (``total`` 0: not known)."""
        now = time.monotonic()
        every_s = 0.1 if self._tty else PROGRESS_EVERY_S
        if not final and self._shown_at is not None and now - self._shown_at < every_s:
            return
        self._shown_at = now
        elapsed_s = max(now - self._started, 1e-6)
        if total <= 0:
            text = f"{self._label}: {elapsed_s:.1f} s"
            share = 1.0 if final else 0.0
        else:
            share = min(1.0, done / total)
            text = (
                f"{self._label}: {done:,} of {total:,} {self._unit} ({share:.0%}),"
                f" {done / elapsed_s:,.0f}/s, {elapsed_s:.0f} s"
            )
        if self._tty:
            bar = "#" * round(30 * share)
            click.echo(f"\r[{bar:<30}] {text}", nl=final, err=True)
        else:
            click.echo(text, err=True)


class StagedProgress:
    """A :class:`ProgressBar` per stage of a command: call it as ``(stage, done,
    total)``; ``stages`` names each stage's label and unit."""

    def __init__(self, stages: dict[str, tuple[str, str]]) -> None:
        self._stages = stages
        self._stage: str | None = None
        self._bar: ProgressBar | None = None
        self._last = (0, 0)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self.close()
            label, unit = self._stages.get(stage, (stage, "units"))
            self._stage, self._bar = stage, ProgressBar(label, unit)
        assert self._bar is not None
        self._last = (done, total)
        self._bar.show(done, total)

    def close(self) -> None:
        """Finish the current stage's line."""
        if self._bar is not None:
            self._bar.show(*self._last, final=True)
            self._bar = None
