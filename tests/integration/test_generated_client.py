"""A client generated from the served OpenAPI document is typed as the answers are.

``openapi-python-client`` generates a Python client from ``/openapi.json``. A small
program uses it against the running server and reads fields that are always present
(an account's balances, an entry's balance after, a hold's status) with no ``None``
checks; ``mypy --strict`` must accept it, and it must run. Before the response schemas
came from :mod:`birdbalance.shapes`, they declared no ``required`` fields and every
field of a generated model was ``X | Unset``: this program would not type-check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.servers import ADMIN_TOKEN, Server, sqlite_server

PROGRAM = '''
"""Uses the generated client the way an integrator would."""

import sys
import uuid

from bbapi import AuthenticatedClient
from bbapi.api.accounts import create_account, get_account
from bbapi.api.holds import create_hold
from bbapi.api.ledger import create_topup, list_entries
from bbapi.models import (
    Account,
    HoldResult,
    ListEntriesResponse200,
    NewAccount,
    NewEntry,
    NewHold,
    Payment,
    PostedEntry,
)


def main(base_url: str, token: str) -> str:
    client = AuthenticatedClient(base_url=base_url, token=token)
    made = create_account.sync(
        client=client,
        body=NewAccount(payment=Payment.PREPAID, type_="euros", name="Generated"),
        idempotency_key=str(uuid.uuid4()),
    )
    assert isinstance(made, Account)
    posted = create_topup.sync(
        made.id, client=client, body=NewEntry(amount="25"), idempotency_key="t1"
    )
    assert isinstance(posted, PostedEntry)
    held = create_hold.sync(
        made.id, client=client, body=NewHold(amount="5"), idempotency_key="h1"
    )
    assert isinstance(held, HoldResult)
    shown = get_account.sync(made.id, client=client)
    assert isinstance(shown, Account)
    page = list_entries.sync(made.id, client=client)
    assert isinstance(page, ListEntriesResponse200)
    # Always-present fields, read with no None checks: typed str, int, bool.
    available: str = shown.balances.live.available
    after: str = posted.entry.balance_after
    seq: int = posted.entry.seq
    status: str = held.hold.status.value
    more: bool = page.has_more
    return f"{available} {after} {seq} {status} {more} {len(page.data)}"


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2]))
'''


def test_a_generated_client_type_checks_strictly_and_works(tmp_path: Path) -> None:
    # The document is the same on both engines: one SQLite server of its own, instead of
    # generating and type-checking twice (about 35 s of a 2-core machine per engine).
    with sqlite_server(tmp_path) as server:
        _generate_check_and_run(server, tmp_path)


def _generate_check_and_run(server: Server, tmp_path: Path) -> None:
    document = httpx.get(f"{server.url}/openapi.json", timeout=10).text
    (tmp_path / "openapi.json").write_text(document)
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    generated = subprocess.run(
        [shutil.which("openapi-python-client", path=env["PATH"]) or "openapi-python-client",
         "generate", "--path", "openapi.json", "--meta", "none", "--output-path", "bbapi"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout, generated.stdout
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    # Strict on the program and on every generated model and operation; the generator's
    # fixed HTTP client module (the same for any document) has typing slips of its own.
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nstrict = True\n\n[mypy-bbapi.client]\nignore_errors = True\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--no-incremental",
         "--python-version", "3.11", "program.py", "bbapi"],
        cwd=tmp_path, env={**env, "MYPYPATH": str(tmp_path)}, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = subprocess.run(
        [sys.executable, "program.py", server.url, ADMIN_TOKEN],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["20", "25", "1", "pending", "False", "1"]
