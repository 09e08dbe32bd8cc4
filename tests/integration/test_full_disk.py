"""A full disk under SQLite: writes get a retryable 503, reads go on, and writes come back
by themselves once space is freed.

The database lives on a small tmpfs of its own (root mounts it, as CI runs), which a
filler file then fills to the last byte.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.databases import in_ci, sqlite_url
from tests.servers import Admin, Server, cli

DISK_BYTES = 16 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}"
        if in_ci():
            pytest.fail(reason + " -- but CI=true, so this test must run", pytrace=False)
        pytest.skip(reason)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        size = 1 << 20
        while size >= 1:  # big blocks first, then smaller ones for what is left
            try:
                os.write(fd, b"\0" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_a_retryable_503_and_writes_recover_when_space_is_freed(
    small_disk: Path,
) -> None:
    db_url = sqlite_url(small_disk / "birdbalance.db")
    log = small_disk.parent / "server.log"
    server = Server(db_url=db_url, log_path=log).start()
    admin = Admin(server.url)
    try:
        account = admin.account()["id"]
        key = admin.key(account)["key"]
        admin.topup(account, "100")
        filler = _fill(small_disk)
        assert os.statvfs(small_disk).f_bavail == 0

        refused = []
        for n in range(40):  # enough writes to need pages the disk does not have
            r = admin.post(account, "charges", idem=f"full-{n}", amount="0.01")
            if r.status_code != 201:
                refused.append(r)
                break
        assert refused, "no write was refused on a full disk"
        r = refused[0]
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5"
        assert r.json()["errors"][0]["code"] == 99 and "disk is full" in r.text
        # Reads go on.
        read = httpx.get(server.url + "/balance", headers={"Authorization": f"AccessKey {key}"})
        assert read.status_code == 200, read.text

        filler.unlink()
        deadline = time.monotonic() + 20
        while True:  # the same key: the refused write was not half-written
            r = admin.post(account, "charges", idem=f"full-{n}", amount="0.01")
            if r.status_code == 201:
                break
            assert r.status_code == 503 and time.monotonic() < deadline, r.text
            time.sleep(0.2)
        assert admin.post(account, "charges", amount="0.01").status_code == 201
    finally:
        admin.http.close()
        server.stop()
    assert cli("verify", db_url=db_url).returncode == 0
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
