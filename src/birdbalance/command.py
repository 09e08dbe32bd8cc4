"""The ``birdbalance`` command's entry point: the server's dependencies, or a clear word.

``pip install birdbalance`` installs the clients and ``verify_webhook`` alone; the
command (the service, its administration, ``check``, ``watch``) comes with
``pip install 'birdbalance[server]'``. Without it, the command says so and exits 1,
instead of a traceback about a missing module.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec
from typing import Final

#: The import names of the ``server`` extra's packages (pyproject.toml; uvloop is
#: optional: granian runs without it).
SERVER_MODULES: Final = (
    "click",
    "granian",
    "starlette",
    "platformdirs",
    "psycopg",
    "psycopg_pool",
    "jinja2",
    "rich",
    "redis",
)


def missing_server_modules() -> list[str]:
    """The server's packages this environment lacks (checked without importing them)."""
    return [name for name in SERVER_MODULES if find_spec(name) is None]


def main() -> None:
    """Run the command line, or explain what it needs (exit status 1)."""
    missing = missing_server_modules()
    if missing:
        print(
            "birdbalance: this command needs the server's dependencies, which are not"
            f" installed ({', '.join(missing)}): pip install 'birdbalance[server]'"
            " (the client alone, birdbalance.AdminClient and verify_webhook, needs none"
            " of them)",
            file=sys.stderr,
        )
        sys.exit(1)
    from birdbalance.cli import main as command_line

    command_line(prog_name="birdbalance")
