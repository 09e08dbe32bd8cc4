"""Real birdbalance servers for tests: separate OS processes on 127.0.0.1, free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any BIRDBALANCE_*/MESSAGEBIRD_* settings of the caller."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BIRDBALANCE_", "MESSAGEBIRD_"))
    }
    env.update(extra)
    return env


#: Commands whose process is the point (their own deadlines, signal handlers, exit paths)
#: or that serve: always a process of their own.
PROCESS_COMMANDS = frozenset({"balance", "check", "watch", "serve"})


def cli(
    *args: str, db_url: str, env: dict[str, str] | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the ``birdbalance`` CLI as a user would, and return what it printed.

    Local commands (accounts, the ledger, verify, backup...) run in this process through
    click's runner, with the same environment, arguments, exit status and separate stdout
    and stderr: a process of their own would add only an interpreter's start (about half
    a second each). The commands in :data:`PROCESS_COMMANDS` get one anyway.
    """
    if not args or args[0] in PROCESS_COMMANDS:
        return cli_process(*args, db_url=db_url, env=env, timeout_s=timeout_s)
    from click.testing import CliRunner

    from birdbalance.cli import main

    wanted = {"BIRDBALANCE_DATABASE_URL": db_url, **(env or {})}
    # As clean_env does for a process: none of the caller's own settings leak in.
    unset = {k: None for k in os.environ if k.startswith(("BIRDBALANCE_", "MESSAGEBIRD_"))}
    result = CliRunner().invoke(
        main, list(args), env={**unset, **wanted}, prog_name="birdbalance", catch_exceptions=False
    )
    return subprocess.CompletedProcess(
        ["birdbalance", *args], result.exit_code, result.stdout, result.stderr
    )


def cli_process(
    *args: str, db_url: str, env: dict[str, str] | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the ``birdbalance`` CLI as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "birdbalance", *args],
        env=clean_env(BIRDBALANCE_DATABASE_URL=db_url, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@dataclass
class Server:
    db_url: str
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ("--no-demo",)
    env: dict[str, str] = field(default_factory=dict)
    #: False: leave BIRDBALANCE_DATABASE_URL unset, as on a fresh machine (set XDG_DATA_HOME).
    pass_database_url: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        """The file of a SQLite database."""
        assert self.db_url.startswith("sqlite:///"), self.db_url
        return Path(self.db_url.removeprefix("sqlite:///"))

    @property
    def engine(self) -> str:
        return "sqlite" if self.db_url.startswith("sqlite:") else "postgresql"

    def start(self) -> Server:
        env = clean_env(
            **{"BIRDBALANCE_ADMIN_TOKEN": ADMIN_TOKEN, "PYTHONUNBUFFERED": "1", **self.env}
        )
        if self.pass_database_url:
            env["BIRDBALANCE_DATABASE_URL"] = self.db_url
        # The log may hold earlier runs of this server (a restart appends).
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "birdbalance",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *self.extra_args,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so that kill() reaches the workers too.
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                answered = httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                answered = False
            # Every worker up, not just the first to answer: granian stops no worker when
            # SIGTERM arrives while one is still starting (it waits out its kill timeout).
            if answered and self._started_workers(offset) >= self.workers:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    @property
    def workers(self) -> int:
        """How many worker processes this server runs."""
        args = list(self.extra_args)
        if "--workers" in args:
            return int(args[args.index("--workers") + 1])
        return int(self.env.get("BIRDBALANCE_WORKERS", "1"))

    def _started_workers(self, offset: int) -> int:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().count(b"] Started worker-")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the server and every worker process at once, as a power cut would."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@contextlib.contextmanager
def sqlite_server(folder: Path) -> Iterator[Server]:
    """A server of the test's own on a new SQLite file in ``folder``, stopped after."""
    server = Server(db_url=f"sqlite:///{folder / 'own.db'}", log_path=folder / "own.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


#: Every Admin client still open; a test's own are closed after it (tests/conftest.py),
#: so a failing assertion cannot leave a socket for a later test's ResourceWarning.
OPEN_ADMINS: weakref.WeakSet[Admin] = weakref.WeakSet()


class Admin:
    """A thin admin API client for tests."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )
        self._n = 0
        OPEN_ADMINS.add(self)

    def _idem(self) -> str:
        self._n += 1
        return f"test-{time.time_ns()}-{self._n}"

    def account(
        self, payment: str = "prepaid", type_: str = "euros", **body: Any
    ) -> dict[str, Any]:
        r = self.http.post("/v1/accounts", json={"payment": payment, "type": type_, **body})
        assert r.status_code == 201, r.text
        return r.json()

    def key(self, account_id: str, mode: str = "live") -> dict[str, Any]:
        r = self.http.post(f"/v1/accounts/{account_id}/keys", json={"mode": mode})
        assert r.status_code == 201, r.text
        return r.json()

    def post(
        self, account_id: str, kind: str, idem: str | None = None, **body: Any
    ) -> httpx.Response:
        return self.http.post(
            f"/v1/accounts/{account_id}/{kind}",
            json=body,
            headers={"Idempotency-Key": idem or self._idem()},
        )

    def topup(self, account_id: str, amount: str, mode: str = "live") -> dict[str, Any]:
        r = self.post(account_id, "topups", amount=amount, mode=mode)
        assert r.status_code == 201, r.text
        return r.json()

    def transfer(
        self, source: str, to: str, amount: str, idem: str | None = None, **body: Any
    ) -> httpx.Response:
        """``POST /v1/transfers`` (its own key unless ``idem`` is given)."""
        return self.http.post(
            "/v1/transfers",
            json={"from": source, "to": to, "amount": amount, **body},
            headers={"Idempotency-Key": idem or self._idem()},
        )
