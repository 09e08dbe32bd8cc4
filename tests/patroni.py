"""A three-member PostgreSQL cluster under Patroni and one etcd, for the failover test.

Everything runs on this machine on free ports, in one temporary folder: an etcd member,
and three Patroni agents, each with its own PostgreSQL data directory, REST API and port.
The settings are those docs/deploy.md recommends for "acknowledged means on two
machines" (``synchronous_mode_strict``, ``synchronous_commit=on``), tightened in time so
that a failover takes seconds rather than the defaults' half a minute.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from tests.servers import free_port

#: Patroni's timing: its loop every second, a leader lock that lapses after 10 s, and a
#: crashed primary failed over at once (not restarted in place, Patroni's default).
DCS = {
    "ttl": 10,
    "loop_wait": 1,
    "retry_timeout": 4,
    "maximum_lag_on_failover": 1_048_576,
    "synchronous_mode": True,
    "synchronous_mode_strict": True,
    "primary_start_timeout": 0,
    "postgresql": {
        "use_pg_rewind": True,
        "use_slots": True,
        "parameters": {
            "wal_log_hints": "on",
            "synchronous_commit": "on",
            "max_connections": 100,
            "max_wal_senders": 10,
            "max_replication_slots": 10,
            "wal_keep_size": "64MB",
            # A replica that lost its primary asks the new one every 0.5 s, not every 5 s:
            # under synchronous_mode_strict, writes wait for it.
            "wal_retrieve_retry_interval": "500ms",
            "fsync": "off",  # a test on one machine: durability is the replicas' job here
            "full_page_writes": "on",
        },
    },
}


def binaries_installed() -> bool:
    return all(shutil.which(name) for name in ("patroni", "etcd")) and bool(
        sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    )


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; its data directories are the postgres user's.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PatroniCluster:
    """etcd plus three Patroni members; :meth:`start` waits for a leader and a sync standby."""

    MEMBERS = 3

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bbpatroni-", dir="/tmp"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self.scope = f"bb{os.getpid()}"
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        self.pg_ports = [free_port() for _ in range(self.MEMBERS)]
        self.api_ports = [free_port() for _ in range(self.MEMBERS)]
        self.bin_dir = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1].parent
        self._etcd: subprocess.Popen[bytes] | None = None
        self._agents: list[subprocess.Popen[bytes] | None] = [None] * self.MEMBERS

    @property
    def url(self) -> str:
        """The multi-host URL birdbalance connects with: whichever member takes writes."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.pg_ports)
        return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"

    def member_url(self, index: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_ports[index]}/postgres"

    # ------------------------------------------------------------------ processes

    def start(self, timeout_s: float = 60.0) -> PatroniCluster:
        etcd_data = self.folder / "etcd"
        with (self.folder / "etcd.log").open("wb") as log:
            self._etcd = subprocess.Popen(
                [
                    "etcd",
                    "--name=e0",
                    f"--data-dir={etcd_data}",
                    f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                    f"--initial-cluster=e0=http://127.0.0.1:{self.etcd_peer_port}",
                    "--unsafe-no-fsync",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait(lambda: self._etcd_ready(), timeout_s, "etcd to answer")
        # The first member bootstraps alone, so that it is the one that runs initdb; the
        # others then copy it with pg_basebackup.
        self._start_agent(0)
        self._wait(lambda: self.leader() == 0, timeout_s, "the first member to lead")
        for index in range(1, self.MEMBERS):
            self._start_agent(index)
        self.wait_healthy(timeout_s)
        return self

    def _start_agent(self, index: int) -> None:
        config = self.folder / f"pg{index}.json"
        config.write_text(json.dumps(self._config(index)))
        if os.geteuid() == 0:
            shutil.chown(config, "postgres", "postgres")
        with (self.folder / f"patroni{index}.log").open("ab") as log:
            self._agents[index] = subprocess.Popen(
                _as_postgres(["patroni", str(config)]),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _config(self, index: int) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "namespace": "/birdbalance-test/",
            "name": f"pg{index}",
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"127.0.0.1:{self.api_ports[index]}",
                "connect_address": f"127.0.0.1:{self.api_ports[index]}",
            },
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": DCS,
                "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}, "no-sync"],
                "pg_hba": [
                    "local all all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.pg_ports[index]}",
                "connect_address": f"127.0.0.1:{self.pg_ports[index]}",
                "data_dir": str(self.folder / f"pg{index}"),
                "bin_dir": str(self.bin_dir),
                "pgpass": str(self.folder / f"pgpass{index}"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "replication": {"username": "replicator", "password": "replicator"},
                    "rewind": {"username": "postgres", "password": "postgres"},
                },
                "parameters": {"unix_socket_directories": str(self.folder)},
            },
            "tags": {"nofailover": False, "noloadbalance": False},
        }

    def stop(self) -> None:
        for agent in self._agents:
            if agent is not None and agent.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(agent.pid, signal.SIGTERM)
        for agent in self._agents:
            if agent is not None:
                try:
                    agent.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(agent.pid, signal.SIGKILL)
                    agent.wait(timeout=10)
        # A postmaster outlives a killed agent: stop what is left of each member.
        for index in range(self.MEMBERS):
            pid = self.postmaster_pid(index)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self._etcd is not None:
            self._etcd.terminate()
            try:
                self._etcd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._etcd.kill()
                self._etcd.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def logs(self) -> str:
        """The tail of every log, for a failing test's report."""
        parts = []
        for path in sorted(self.folder.glob("*.log")):
            text = path.read_text(errors="replace")
            parts.append(f"--- {path.name}\n{text[-4000:]}")
        return "\n".join(parts)

    # ------------------------------------------------------------------ state

    def _etcd_ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.etcd_port}/health", timeout=1
            ) as answer:
                return bool(json.load(answer).get("health") == "true")
        except OSError:
            return False

    def cluster_state(self) -> dict[str, Any] | None:
        """``GET /cluster`` from any member that answers."""
        for port in self.api_ports:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/cluster", timeout=1
                ) as answer:
                    state: dict[str, Any] = json.load(answer)
                    return state
            except (OSError, ValueError):
                continue
        return None

    def leader(self) -> int | None:
        """The member that leads and takes writes, or None."""
        state = self.cluster_state()
        if state is None:
            return None
        for member in state.get("members", []):
            if member.get("role") == "leader" and member.get("state") == "running":
                index = int(member["name"].removeprefix("pg"))
                if self._accepts_writes(index):
                    return index
        return None

    def _accepts_writes(self, index: int) -> bool:
        try:
            with psycopg.connect(self.member_url(index), connect_timeout=1) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                return row is not None and row[0] is False
        except psycopg.Error:
            return False

    def healthy(self) -> bool:
        """A leader, a synchronous standby, and every member streaming."""
        state = self.cluster_state()
        if state is None:
            return False
        members = state.get("members", [])
        roles = sorted(m.get("role") for m in members)
        running = all(m.get("state") in ("running", "streaming") for m in members)
        return (
            len(members) == self.MEMBERS
            and running
            and roles == ["leader", "replica", "sync_standby"]
            and self.leader() is not None
        )

    def wait_healthy(self, timeout_s: float = 60.0) -> float:
        """Wait until :meth:`healthy`; return the seconds it took."""
        return self._wait(self.healthy, timeout_s, "a leader, a sync standby and a replica")

    def postmaster_pid(self, index: int) -> int | None:
        pidfile = self.folder / f"pg{index}" / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def kill_postmaster(self, index: int) -> None:
        """SIGKILL the member's postmaster: what a crash of PostgreSQL looks like."""
        pid = self.postmaster_pid(index)
        assert pid is not None, f"pg{index} has no running postmaster"
        os.kill(pid, signal.SIGKILL)

    def _wait(self, done: Any, timeout_s: float, what: str) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if done():
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"waited {timeout_s:.0f} s for {what}\n{self.logs()}")
