"""Fixtures of the integration tests: a Redis database for the limits shared by nodes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from tests.databases import in_ci

REDIS_URL = "redis://127.0.0.1:6379/9"
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
