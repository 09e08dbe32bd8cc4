"""The files a node's workers add their metrics up in: sums, growth, limits, damage."""

from __future__ import annotations

from pathlib import Path

import pytest

from birdbalance import shared_counters
from birdbalance.metrics import Metrics
from birdbalance.shared_counters import INITIAL_BYTES, SharedCounters


def test_two_workers_counts_add_up_on_every_scrape(tmp_path: Path) -> None:
    first = Metrics(SharedCounters(tmp_path, "101"))
    second = Metrics(SharedCounters(tmp_path, "102"))
    for _ in range(3):
        first.requests.inc("/balance", "GET", "200")
        first.latency.observe(0.0004, "/balance")
    for _ in range(4):
        second.requests.inc("/balance", "GET", "200")
        second.latency.observe(0.02, "/balance")
    second.deliveries.inc("delivered")
    for metrics in (first, second):
        text = metrics.render().decode()
        assert (
            'birdbalance_http_requests_total{route="/balance",method="GET",status="200"} 7' in text
        )
        assert 'le="0.0005"} 3' in text and 'le="0.025"} 7' in text and 'le="+Inf"} 7' in text
        assert 'birdbalance_http_request_duration_seconds_count{route="/balance"} 7' in text
        assert 'birdbalance_webhook_attempts_total{outcome="delivered"} 1' in text


def test_a_file_grows_past_its_first_size_and_stops_at_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_counters, "MAX_BYTES", 8 * INITIAL_BYTES)
    counters = SharedCounters(tmp_path, "1")
    keys = 0
    while (tmp_path / "1.counters").stat().st_size < 4 * INITIAL_BYTES:
        slot = counters.slot(("m", str(keys)))
        assert slot is not None
        counters.store(slot, keys)
        keys += 1
    totals = counters.total()
    assert len(totals) == keys and totals[("m", str(keys - 1))] == keys - 1
    while counters.slot(("m", str(keys))) is not None:
        keys += 1
    assert (tmp_path / "1.counters").stat().st_size == 8 * INITIAL_BYTES
    assert len(counters.total()) == keys  # full: new keys are not shared, old ones are


def test_a_damaged_or_foreign_file_is_read_up_to_the_damage(tmp_path: Path) -> None:
    counters = SharedCounters(tmp_path, "1")
    counters.store(counters.slot(("m", "a")) or 0, 5)
    (tmp_path / "2.counters").write_bytes(b"\xff" * 64)  # header claims more than there is
    (tmp_path / "3.counters").write_bytes(b"")
    good = SharedCounters(tmp_path, "4")
    good.store(good.slot(("m", "a")) or 0, 2)
    with (tmp_path / "4.counters").open("r+b") as raw:  # a key that is not JSON
        raw.seek(8 + 4)
        raw.write(b"}")
    assert counters.total() == {("m", "a"): 5.0}
