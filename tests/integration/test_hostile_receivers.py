"""No receiver can delay another: hostile webhook receivers against a real server.

One receiver trickles its answer a byte a second, one answers 512 MiB, one accepts and
never answers; each has a backlog of events. A healthy receiver on another subscription
still gets every event within the usual latency, the server's memory stays flat, and
every hostile attempt is recorded as a failed attempt with its reason. On both engines.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from birdbalance.mail import SMTPSettings, send as send_mail
from tests.databases import raw_execute
from tests.receivers import FAST_RETRIES, HostileReceiver, Receiver
from tests.servers import Admin, Server

#: Each attempt's whole deadline in these tests.
DEADLINE_S = 2.0


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Server]:
    env = {**FAST_RETRIES, "BIRDBALANCE_WEBHOOK_TIMEOUT_S": str(DEADLINE_S)}
    srv = Server(db_url=database_url, log_path=tmp_path / "node.log", env=env)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def admin(node: Server) -> Iterator[Admin]:
    client = Admin(node.url)
    yield client
    client.http.close()


def _rss_bytes(server: Server) -> int:
    """Resident memory of the server's whole process group."""
    assert server.process is not None
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != server.process.pid:
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def _deliveries(admin: Admin, webhook_id: str) -> list[dict]:  # type: ignore[type-arg]
    r = admin.http.get("/v1/deliveries", params={"webhook": webhook_id, "limit": "100"})
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def test_a_healthy_receiver_is_never_held_up_by_hostile_ones(node: Server, admin: Admin) -> None:
    hostile = {mode: HostileReceiver(mode).start() for mode in ("trickle", "flood", "silent")}
    healthy = Receiver().start()
    try:
        aid = admin.account()["id"]
        admin.topup(aid, "100")
        assert admin.http.post(f"/v1/accounts/{aid}/alerts", json={"below": "50"}).status_code
        hooks = {}
        for mode, receiver in hostile.items():
            r = admin.http.post("/v1/webhooks", json={"url": receiver.url})
            assert r.status_code == 201, r.text
            hooks[mode] = r.json()["id"]
        r = admin.http.post("/v1/webhooks", json={"url": healthy.url, "account": aid})
        assert r.status_code == 201, r.text
        rss_before = _rss_bytes(node)

        latencies_s = []
        for n in range(12):
            # Alternately below 50 (balance.low) and back to 100 (balance.recovered).
            if n % 2 == 0:
                r = admin.post(aid, "charges", amount="60")
            else:
                r = admin.post(aid, "topups", amount="60")
            assert r.status_code == 201, r.text
            answered = time.monotonic()
            received = healthy.wait_for(n + 1, timeout_s=10)
            latencies_s.append(max(x.at for x in received) - answered)

        # Let every hostile receiver cut off at least one attempt at its deadline.
        time.sleep(DEADLINE_S + 1.5)
        rss_after = _rss_bytes(node)
        p50_ms = 1000 * statistics.median(latencies_s)
        worst_ms = 1000 * max(latencies_s)
        print(
            f"healthy receiver latency under hostile receivers: p50 {p50_ms:.0f} ms, "
            f"max {worst_ms:.0f} ms; server RSS {rss_before / 2**20:.1f} -> "
            f"{rss_after / 2**20:.1f} MiB; the flood sent {hostile['flood'].sent_bytes / 2**20:.1f}"
            f" MiB over {hostile['flood'].connections} connections"
        )
        # The usual latency is the poll interval (50 ms here) and a commit; a receiver
        # holding the healthy one up would add its whole deadline (2 s) at least.
        assert worst_ms < 1000, latencies_s
        assert rss_after - rss_before < 40 * 2**20, (rss_before, rss_after)

        for mode in ("trickle", "silent"):
            attempts = _deliveries(admin, hooks[mode])
            assert attempts and all(d["status"] == "pending" for d in attempts)
            failed = [d for d in attempts if d["last_error"] and "within 2 s" in d["last_error"]]
            assert failed, (mode, attempts)
        flooded = _deliveries(admin, hooks["flood"])
        assert any(d["status"] == "delivered" for d in flooded), flooded
        # The flood's 512 MiB were never read: the connection was dropped after 64 KiB.
        assert hostile["flood"].sent_bytes < 64 * 2**20
    finally:
        healthy.stop()
        for receiver in hostile.values():
            receiver.stop()


def test_a_target_stored_by_an_older_version_is_dead_lettered(
    admin: Admin, database_url: str
) -> None:
    """Old versions stored URLs the transport refuses; each is dead at its first attempt."""
    aid = admin.account()["id"]
    admin.topup(aid, "100")
    admin.http.post(f"/v1/accounts/{aid}/alerts", json={"below": "50"})
    hook = admin.http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"}).json()
    raw_execute(
        database_url,
        f"UPDATE webhooks SET url = 'http://exa mple.test/\t' WHERE id = '{hook['id']}'",
    )
    assert admin.post(aid, "charges", amount="60").status_code == 201
    deadline = time.monotonic() + 10
    while True:
        found = _deliveries(admin, hook["id"])
        if found and found[0]["status"] == "dead":
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    assert found[0]["attempts"] == 1
    assert found[0]["last_error"].startswith("not sent: url must be printable ASCII")


#: Targets an older check let through, or that the transport would rewrite or refuse.
REFUSED_TARGETS = [
    "http://exa mple.test/",
    " http://example.test/",
    "http://example.test/\n",
    "http://example.test/\x7f",
    "http://\u00e9.test/",
    "http://example.test:99999/",
    "http://example.test:0/",
    "http://[::1/",
    "http://-bad-.test/",
    "http:///path",
    "ftp://example.test/",
    "mailto:a@b.test?cc=c@d.test",
    "mailto:two@a.test,three@b.test",
]


def test_targets_the_transport_would_refuse_get_422(admin: Admin) -> None:
    for url in REFUSED_TARGETS:
        r = admin.http.post("/v1/webhooks", json={"url": url})
        assert r.status_code == 422, (url, r.text)
        assert r.json()["errors"][0]["parameter"] == "url"
    assert admin.http.get("/v1/webhooks").json()["data"] == []


def test_a_trickling_smtp_server_is_cut_off_at_the_deadline() -> None:
    """smtplib's timeout is per read; the send's deadline bounds the whole conversation."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            for byte in b"220 slow.test ESMTP at one byte a while\r\n" * 100:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.2)

    threading.Thread(target=trickle, daemon=True).start()
    settings = SMTPSettings(
        host="127.0.0.1", port=port, security="none", sender="bb@test.example", timeout_s=5
    )
    message = EmailMessage()
    message.set_content("x")
    started = time.monotonic()
    try:
        with pytest.raises(OSError):
            send_mail(settings, message, ["ops@test.example"], deadline_s=1.0)
        took_s = time.monotonic() - started
    finally:
        stop.set()
        listener.close()
    # The banner alone would take 8 s; every read arrives well within the 5 s timeout.
    assert took_s < 2.5, took_s
