"""The README's promise: one command on a fresh machine serves a demo account."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx

from tests.databases import sqlite_url
from tests.servers import Server


def _fresh_machine_server(data_home: Path, log: Path) -> Server:
    # No database URL and no --no-demo: the embedded default in the user's data directory.
    return Server(
        db_url=sqlite_url(data_home / "birdbalance" / "birdbalance.db"),
        log_path=log,
        extra_args=(),
        env={"XDG_DATA_HOME": str(data_home)},
        pass_database_url=False,
    )


def test_first_start_creates_a_demo_and_prints_a_working_curl(tmp_path: Path) -> None:
    data_home = tmp_path / "xdg"
    srv = _fresh_machine_server(data_home, tmp_path / "out.log").start()
    try:
        out = srv.log_path.read_text()
        assert "Created demo account" in out
        curl_line = re.search(r"^\s*(curl -s \S+/balance -H '[^']+')$", out, re.M)
        live_key = re.search(r"live key: (\S+)", out)
        assert curl_line and live_key, out
        assert srv.db_path.exists()
        body = subprocess.run(
            ["bash", "-c", curl_line.group(1)],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        assert body == '{"payment":"prepaid","type":"euros","amount":103}'
        live = httpx.get(
            srv.url + "/balance", headers={"Authorization": f"AccessKey {live_key.group(1)}"}
        )
        assert live.json() == {"payment": "prepaid", "type": "euros", "amount": 103}
    finally:
        srv.stop()
    # A second start finds the demo account and creates nothing new.
    again = _fresh_machine_server(data_home, tmp_path / "out2.log").start()
    again.stop()
    assert "Created demo account" not in again.log_path.read_text()


def test_generated_admin_token_is_printed_and_works(tmp_path: Path) -> None:
    srv = Server(
        db_url=sqlite_url(tmp_path / "t.db"),
        log_path=tmp_path / "out.log",
        env={"BIRDBALANCE_ADMIN_TOKEN": ""},
    ).start()
    try:
        out = srv.log_path.read_text()
        token = re.search(r"until you stop:\n\s+(\S+)", out)
        assert token, out
        ok = httpx.get(srv.url + "/v1/accounts", headers={"Authorization": f"Bearer {token[1]}"})
        assert ok.status_code == 200
    finally:
        srv.stop()


def test_a_worker_freezes_what_it_built_before_serving(tmp_path: Path) -> None:
    """The long-lived heap is kept out of full collections (GC pauses were the p99)."""
    import gc

    from birdbalance.server import _load_app
    from birdbalance.settings import Settings

    gc.unfreeze()
    try:
        app = _load_app(Settings(database_url=sqlite_url(tmp_path / "w.db")))
        assert app is not None
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
