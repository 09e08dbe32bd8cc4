"""The CLI's output layer (``--output table|json|csv``), its shell completion, and the
audit declared on each command that changes something."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from birdbalance.cli import main
from birdbalance.cli.base import Audited
from tests.databases import sqlite_url
from tests.servers import clean_env, cli

WRITING = {"create", "add", "remove", "revoke", "rotate", "capture", "void", "expire",
           "redeliver", "recharge-failed", "topup", "charge", "refund", "adjust",
           "import", "transfer", "limit", "rotate-secret"}  # fmt: skip


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "cli.db")


def _account(db_url: str) -> str:
    made = cli("accounts", "create", "--payment", "prepaid", "--type", "euros", "--name",
               "Shop, Ltd", "-o", "json", db_url=db_url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["id"])


def test_csv_json_and_table_say_the_same(db_url: str) -> None:
    aid = _account(db_url)
    as_csv = cli("accounts", "list", "--output", "csv", db_url=db_url)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["id"], r["name"], r["credit_limit"]) for r in rows] == [(aid, "Shop, Ltd", "")]
    as_json = json.loads(cli("accounts", "list", "-o", "json", db_url=db_url).stdout)
    assert as_json == json.loads(cli("accounts", "list", "--json", db_url=db_url).stdout)
    assert as_json["data"][0]["name"] == "Shop, Ltd"
    table = cli("accounts", "list", db_url=db_url).stdout.splitlines()
    assert table[0].startswith("ID") and table[1].startswith(aid)
    shown = list(csv.reader(io.StringIO(cli("accounts", "show", aid, "-o", "csv",
                                            db_url=db_url).stdout)))  # fmt: skip
    assert len(shown) == 2 and shown[0][0] == "id" and shown[1][0] == aid


def test_notes_leave_csv_and_json_clean(db_url: str) -> None:
    aid = _account(db_url)
    posted = cli("topup", aid, "25", "--reference", "inv-1", "-o", "csv", db_url=db_url)
    rows = list(csv.DictReader(io.StringIO(posted.stdout)))
    assert len(rows) == 1 and rows[0]["kind"] == "topup" and rows[0]["balance_after"] == "25"
    assert "balance (live): 25 euros" in posted.stderr
    assert "balance (live)" in cli("topup", aid, "1", db_url=db_url).stdout  # a table: beside it


def test_a_table_on_a_terminal_is_drawn_by_rich(db_url: str) -> None:
    aid = _account(db_url)
    primary, secondary = os.openpty()
    env = clean_env(BIRDBALANCE_DATABASE_URL=db_url, COLUMNS="200", TERM="xterm")
    command = [sys.executable, "-m", "birdbalance", "accounts", "list"]
    done = subprocess.run(command, stdout=secondary, stderr=subprocess.PIPE, env=env, timeout=60)
    os.close(secondary)
    shown = os.read(primary, 65536).decode()
    os.close(primary)
    assert done.returncode == 0 and aid in shown
    assert "\x1b[1m" in shown  # rich's bold header: only on a terminal


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_and_completions(shell: str, db_url: str) -> None:
    script = cli("completion", shell, db_url=db_url)
    assert script.returncode == 0 and "_BIRDBALANCE_COMPLETE" in script.stdout


def test_bash_completes_commands_and_choices() -> None:
    env = clean_env(_BIRDBALANCE_COMPLETE="bash_complete", COMP_WORDS="birdbalance acc",
                    COMP_CWORD="1")  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "birdbalance"], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip
    assert "plain,accounts" in done.stdout.splitlines()
    env.update(COMP_WORDS="birdbalance accounts list --output ", COMP_CWORD="4")
    done = subprocess.run([sys.executable, "-m", "birdbalance"], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip
    assert {"plain,table", "plain,json", "plain,csv"} <= set(done.stdout.splitlines())


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= _commands(command, f"{prefix}{name} ")
        else:
            found[f"{prefix}{name}"] = command
    return found


def test_every_command_that_writes_declares_its_audit() -> None:
    commands = _commands(main)
    audited = {name for name, c in commands.items() if isinstance(c, Audited)}
    writing = {name for name in commands if name.split()[-1] in WRITING}
    assert audited == writing, audited ^ writing
    assert len(audited) == 24
