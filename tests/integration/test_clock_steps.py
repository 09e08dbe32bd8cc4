"""A node's clock that jumps a day forward for a moment and back, under libfaketime.

The server runs with Debian's libfaketime preloaded, its offset read from a file the
test rewrites (the monotonic clock is left alone, as an NTP step leaves it). While the
clock is a day ahead, a charge is written and the hold sweeper runs. Afterwards: no entry
is stamped in the future, later entries are not either, and the hold that had an hour
left is still pending. On both engines.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.databases import PostgresCluster, in_ci
from tests.servers import Admin, Server

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
#: How far ahead of the real time any stamp may be (the test's own slack).
SLACK = timedelta(seconds=5)


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _need_libfaketime() -> None:
    if not LIBFAKETIME.exists():
        reason = "libfaketime is not installed (scripts/bootstrap dev installs faketime)"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def _faked(offset: Path) -> dict[str, str]:
    """The server's environment: its wall clock offset by what ``offset`` says."""
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "BIRDBALANCE_HOLD_SWEEP_INTERVAL_S": "0.2",
    }


def test_a_clock_that_jumps_ahead_for_a_moment_stamps_nothing_in_the_future(
    database_url: str, tmp_path: Path
) -> None:
    _need_libfaketime()
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    log = tmp_path / "server.log"
    server = Server(db_url=database_url, log_path=log, env=_faked(offset)).start()
    admin = Admin(server.url)
    try:
        account = admin.account()["id"]
        admin.topup(account, "100")
        hold = admin.post(account, "holds", amount="10", expires_in=3600)
        assert hold.status_code == 201, hold.text

        offset.write_text("+1d\n")
        time.sleep(1.5)  # the sweeper runs several times a day ahead
        during = admin.post(account, "charges", amount="1", reference="during the jump")
        assert during.status_code == 201, during.text
        time.sleep(1.0)
        offset.write_text("+0\n")
        time.sleep(0.5)
        after = admin.post(account, "charges", amount="1", reference="after the jump")
        assert after.status_code == 201, after.text

        real_now = datetime.now(UTC)
        entries = admin.http.get(f"/v1/accounts/{account}/entries").json()["data"]
        assert len(entries) == 3
        for entry in entries:
            assert _stamp(entry["created_at"]) <= real_now + SLACK, entry
        shown = admin.http.get(f"/v1/holds/{hold.json()['hold']['id']}").json()
        assert shown["status"] == "pending", shown
        assert _stamp(shown["expires_at"]) > real_now + timedelta(minutes=55)
    finally:
        admin.http.close()
        server.stop()


def test_a_node_whose_clock_is_wrong_for_good_stamps_by_the_database_clock(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    """Wrong by a day from before it started (so it believes it): the node still stamps
    within two seconds of PostgreSQL's clock, and expires no hold early."""
    _need_libfaketime()
    offset = tmp_path / "faketime"
    offset.write_text("+1d\n")
    log = tmp_path / "server.log"
    server = Server(db_url=postgres.new_database(), log_path=log, env=_faked(offset)).start()
    admin = Admin(server.url)
    try:
        account = admin.account()["id"]
        admin.topup(account, "100")
        hold = admin.post(account, "holds", amount="10", expires_in=3600)
        assert hold.status_code == 201, hold.text
        time.sleep(1.0)  # the sweeper runs several times
        charge = admin.post(account, "charges", amount="1")
        assert charge.status_code == 201, charge.text
        real_now = datetime.now(UTC)
        entries = admin.http.get(f"/v1/accounts/{account}/entries").json()["data"]
        for entry in entries:
            assert abs(_stamp(entry["created_at"]) - real_now) <= SLACK, entry
        shown = admin.http.get(f"/v1/holds/{hold.json()['hold']['id']}").json()
        assert shown["status"] == "pending", shown
        expires = _stamp(shown["expires_at"])
        assert abs(expires - (real_now + timedelta(hours=1))) <= SLACK, shown
    finally:
        admin.http.close()
        server.stop()
    assert "clock is 86400.0 s off the database's" in log.read_text()
