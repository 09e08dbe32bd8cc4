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
