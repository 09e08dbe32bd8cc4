"""Every ``birdbalance`` line in the README parses as it stands, once ids are filled in.

The cheat sheet is meant to be pasted: no ``|`` or ``[…]`` notation, every command and
option real. Each line is parsed by the CLI's own click definitions (nothing runs).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from birdbalance.cli import main

README = Path(__file__).parents[2] / "README.md"
IDS = {"acc_…": "acc_01", "key_…": "key_01", "hld_…": "hld_01", "dlv_…": "dlv_01",
       "alr_…": "alr_01", "ent_…": "ent_01", "tok_…": "tok_01"}  # fmt: skip


def _lines() -> list[str]:
    found = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"^(\w+=\S+ )+", "", line.strip())  # an env prefix
            if command.startswith("birdbalance "):
                found.append(command)
    return found


def test_there_are_lines_to_check() -> None:
    assert len(_lines()) > 30


@pytest.mark.parametrize("line", _lines())
def test_each_line_parses(line: str) -> None:
    for placeholder, real in IDS.items():
        line = line.replace(placeholder, real)
    words = shlex.split(line, comments=True)
    if ">" in words:
        words = words[: words.index(">")]
    assert not {"|", "[", "]"} & set("".join(words[1:])), line
    assert "…" not in " ".join(words), f"a placeholder without a stand-in: {line}"
    ctx = main.make_context("birdbalance", words[1:])
    command: click.Command = main
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        assert sub is not None, line
        command = sub
        ctx = command.make_context(str(name), rest, parent=ctx)
