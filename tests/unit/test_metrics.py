"""The Prometheus exposition: read back by Prometheus's own parser."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from birdbalance.metrics import MAX_SERIES, OTHER, Counter, Gauge, Histogram, Metrics


def _families(text: bytes) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text.decode("utf-8"))}


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text.decode("utf-8"))
        for s in f.samples
    }


def test_counters_histograms_and_gauges_parse_as_prometheus_reads_them() -> None:
    metrics = Metrics()
    metrics.requests.inc("/balance", "GET", "200")
    metrics.requests.inc("/balance", "GET", "200")
    metrics.requests.inc("/balance", "GET", "401")
    for value in (0.0002, 0.0007, 0.003, 9.0):
        metrics.latency.observe(value, "/balance")
    metrics.entries.inc("charge", "posted")
    text = metrics.render([Gauge("x_depth", "A gauge.", ("q",), [(("a",), 3.0)])])
    samples = _samples(text)
    assert (
        samples[
            (
                "birdbalance_http_requests_total",
                (("method", "GET"), ("route", "/balance"), ("status", "200")),
            )
        ]
        == 2
    )
    assert (
        samples[
            (
                "birdbalance_http_requests_total",
                (("method", "GET"), ("route", "/balance"), ("status", "401")),
            )
        ]
        == 1
    )
    bucket = "birdbalance_http_request_duration_seconds_bucket"
    assert samples[(bucket, (("le", "0.0005"), ("route", "/balance")))] == 1
    assert samples[(bucket, (("le", "0.001"), ("route", "/balance")))] == 2  # cumulative
    assert samples[(bucket, (("le", "0.005"), ("route", "/balance")))] == 3
    assert samples[(bucket, (("le", "5.0"), ("route", "/balance")))] == 3
    assert samples[(bucket, (("le", "+Inf"), ("route", "/balance")))] == 4
    assert (
        samples[("birdbalance_http_request_duration_seconds_count", (("route", "/balance"),))] == 4
    )
    total = samples[("birdbalance_http_request_duration_seconds_sum", (("route", "/balance"),))]
    assert math.isclose(total, 9.0039)
    assert (
        samples[("birdbalance_ledger_entries_total", (("kind", "charge"), ("outcome", "posted")))]
        == 1
    )
    assert samples[("x_depth", (("q", "a"),))] == 3
    families = _families(text)
    assert families["birdbalance_http_request_duration_seconds"].type == "histogram"  # type: ignore[attr-defined]
    assert families["x_depth"].type == "gauge"  # type: ignore[attr-defined]


def test_label_values_are_escaped() -> None:
    counter = Counter("t_total", "Escaping.", ("v",))
    odd = 'a"b\\c\nd'
    counter.inc(odd)
    text = ("\n".join(counter.lines()) + "\n").encode()
    assert _samples(text)[("t_total", (("v", odd),))] == 1


def test_every_metric_has_a_bounded_number_of_series() -> None:
    counter = Counter("c_total", "Bounded.", ("path",))
    histogram = Histogram("h_seconds", "Bounded.", ("path",))
    for n in range(MAX_SERIES + 500):
        counter.inc(f"/x/{n}")
        histogram.observe(0.001, f"/x/{n}")
    assert len(counter.values) == MAX_SERIES + 1 and counter.values[(OTHER,)] == 500
    assert len(histogram.series) == MAX_SERIES + 1
    assert histogram.series[(OTHER,)][0][1] == 500  # the 1 ms bucket of "other"
    counter.inc("/x/0")  # a known series still counts as itself
    assert counter.values[("/x/0",)] == 2
