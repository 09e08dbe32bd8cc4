"""Real birdbalance servers for tests: separate OS processes on 127.0.0.1, free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
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


def cli(*args: str, db_url: str, env: dict[str, str] | None = None, timeout_s: float = 60):
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
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

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


class Admin:
    """A thin admin API client for tests."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )
        self._n = 0

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
