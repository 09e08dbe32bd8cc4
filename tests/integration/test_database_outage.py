"""PostgreSQL stops under load and comes back: birdbalance answers 503 in its errors shape
within its timeout (never a hang, never a 500), says so on /readyz but not /healthz, and
recovers by itself with every acknowledged write kept exactly once."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx

from tests.databases import PrivateCluster
from tests.servers import ADMIN_TOKEN, Admin, Server

TIMEOUT_S = 1.0
#: What one request may take while the database is down: its timeout, and slack for a
#: connection attempt and this busy machine.
MAX_WAIT_S = TIMEOUT_S + 2.5


class Load:
    """Charges of 0.01 with their own Idempotency-Keys, and balance reads, in two threads."""

    def __init__(self, server: Server, account: str, key: str) -> None:
        self.server, self.account, self.key = server, account, key
        self.writes: list[tuple[str, int, float]] = []  # key, status, seconds
        self.entries: dict[str, str] = {}  # key -> the entry its 201 acknowledged
        self.reads: list[tuple[int, float]] = []
        self.bodies: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._write, daemon=True),
            threading.Thread(target=self._read, daemon=True),
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _write(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                idem = f"outage-{n}"
                started = time.monotonic()
                try:
                    r = client.post(
                        f"/v1/accounts/{self.account}/charges",
                        json={"amount": "0.01"},
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Idempotency-Key": idem},
                    )
                    status = r.status_code
                    if status == 201:
                        self.entries[idem] = r.json()["entry"]["id"]
                    elif status >= 500:
                        self.bodies.append(r.text)
                except httpx.TransportError:
                    status = 0
                self.writes.append((idem, status, time.monotonic() - started))

    def _read(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                r = client.get("/balance", headers={"Authorization": f"AccessKey {self.key}"})
                self.reads.append((r.status_code, time.monotonic() - started))
                if r.status_code >= 500:
                    self.bodies.append(r.text)
                time.sleep(0.02)


def _wait_for(predicate, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_postgresql_stops_under_load_and_comes_back(
    private_cluster: PrivateCluster, tmp_path: Path
) -> None:
    cluster = private_cluster
    server = Server(
        db_url=cluster.url,
        log_path=tmp_path / "server.log",
        env={"BIRDBALANCE_DATABASE_TIMEOUT_S": str(TIMEOUT_S)},
    ).start()
    try:
        admin = Admin(server.url)
        account = admin.account()["id"]
        admin.topup(account, "1000")
        key = admin.key(account)["key"]
        with Load(server, account, key) as load:
            assert _wait_for(lambda: sum(s == 201 for _, s, _ in load.writes) >= 20, 20)
            cluster.stop()
            down_at = len(load.writes), len(load.reads)
            time.sleep(3 * TIMEOUT_S)
            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
            ready = httpx.get(server.url + "/readyz", timeout=MAX_WAIT_S + 2)
            assert ready.status_code == 503 and ready.json()["errors"][0]["code"] == 99
            outage_writes = load.writes[down_at[0] :]
            outage_reads = load.reads[down_at[1] :]
            cluster.start()
            assert _wait_for(
                lambda: httpx.get(server.url + "/readyz", timeout=5).status_code == 200, 30
            )
            recovered_at = len(load.writes)
            assert _wait_for(
                lambda: sum(s == 201 for _, s, _ in load.writes[recovered_at:]) >= 20, 30
            ), "writes did not recover by themselves"
        # While it was down: 503s in the errors shape, each within the timeout.
        assert outage_writes and outage_reads
        assert {s for _, s, _ in outage_writes} <= {201, 503}, outage_writes
        assert any(s == 503 for _, s, _ in outage_writes)
        assert {s for s, _ in outage_reads} <= {200, 503}, outage_reads
        assert max(t for _, _, t in outage_writes) < MAX_WAIT_S, outage_writes
        assert max(t for _, t in outage_reads) < MAX_WAIT_S, outage_reads
        assert all('"errors":[{"code":99' in body for body in load.bodies), load.bodies[:3]
        # Nothing lost, nothing twice: every key sent again is (or becomes) one charge.
        keys = [idem for idem, _, _ in load.writes]
        for idem in keys:
            again = admin.post(account, "charges", idem=idem, amount="0.01")
            assert again.status_code == 201, again.text
            if idem in load.entries:  # acknowledged: the same entry, not a second one
                assert again.json()["entry"]["id"] == load.entries[idem]
        balance = admin.http.get(f"/v1/accounts/{account}").json()["balances"]["live"]
        assert Decimal(balance["amount"]) == Decimal("1000") - Decimal("0.01") * len(keys)
        assert balance["entries"] == len(keys) + 1
        admin.http.close()
    finally:
        server.stop()
    verified = server.log_path.read_text()
    assert "Traceback" not in verified, verified[-3000:]
