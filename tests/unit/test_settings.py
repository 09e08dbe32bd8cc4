"""Settings from the environment: each bound refused with a clear message."""

from __future__ import annotations

import pytest

from birdbalance.errors import SettingsError
from birdbalance.settings import Settings


def test_the_redis_timeout_is_read_and_bounded() -> None:
    assert Settings.from_env({}).redis_timeout_s == 0.25
    assert Settings.from_env({"BIRDBALANCE_REDIS_TIMEOUT_S": "5"}).redis_timeout_s == 5.0
    for bad in ("0", "0.001", "11", "-1"):
        with pytest.raises(SettingsError, match="redis_timeout_s"):
            Settings.from_env({"BIRDBALANCE_REDIS_TIMEOUT_S": bad})
    with pytest.raises(SettingsError, match="must be a number"):
        Settings.from_env({"BIRDBALANCE_REDIS_TIMEOUT_S": "soon"})


def test_a_node_holds_as_many_connections_as_its_open_files_allow() -> None:
    from birdbalance.server import (
        MAX_CONNECTIONS,
        RESERVED_FILES,
        connections_per_worker,
        granian_options,
    )

    one, four = Settings(), Settings(workers=4)
    # granian's own default would be 1,024 per worker: one client's idle sockets filled it.
    assert connections_per_worker(one, 20_000) == MAX_CONNECTIONS
    assert connections_per_worker(four, 20_000) == MAX_CONNECTIONS // 4
    assert connections_per_worker(one, 4096) == 4096 - RESERVED_FILES
    assert connections_per_worker(one, 256) == 1024  # never below granian's own default
    assert connections_per_worker(one, -1) == MAX_CONNECTIONS  # RLIM_INFINITY
    assert granian_options(four, 20_000)["backpressure"] == MAX_CONNECTIONS // 4
