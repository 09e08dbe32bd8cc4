"""Fixtures of the integration tests: a Redis database for the limits shared by nodes,
and a PostgreSQL server of a test's own to stop, start and reconfigure."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from tests.databases import PrivateCluster, in_ci
from tests.servers import free_port

#: A database of its own for each pytest-xdist worker (gw0 -> 9, gw1 -> 10, ...), since
#: each one empties it before and after its tests.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
assert _WORKER <= 6, "Redis has 16 databases: run at most 7 workers"
REDIS_URL = f"redis://127.0.0.1:6379/{9 + _WORKER}"
REDIS_START = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no'
    " --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        if not in_ci():
            pytest.skip("no Redis at 127.0.0.1:6379")
        subprocess.run(["bash", "-c", REDIS_START], check=False, capture_output=True)
        time.sleep(1)
        client.ping()
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    """A PostgreSQL server of this test's own (initdb in a temporary folder, a free port)."""
    try:
        cluster = PrivateCluster(free_port()).init()
    except (AssertionError, OSError) as exc:
        if in_ci():
            raise
        pytest.skip(f"no PostgreSQL server binaries to run a private cluster: {exc}")
    cluster.start()
    yield cluster
    cluster.remove()
