"""Metrics in the Prometheus text format (version 0.0.4), kept per process.

Pure: counters and histograms are plain dictionaries updated on the event loop (every
request, entry and delivery is recorded there, so no lock is needed), and
:func:`render` turns them, plus gauges read at scrape time, into the exposition text.
Every metric has a bounded number of series: past :data:`MAX_SERIES` label sets, new
ones are counted under the label value ``other``, so a flood of odd paths or statuses
cannot grow memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

#: Label sets one metric keeps before folding new ones into ``other``.
MAX_SERIES: Final = 1000
#: Request latency buckets, seconds (GET /balance answers in well under a millisecond).
LATENCY_BUCKETS_S: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
OTHER: Final = "other"
CONTENT_TYPE: Final = b"text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


@dataclass
class Counter:
    """A monotonically increasing count per label set."""

    name: str
    help: str
    label_names: tuple[str, ...] = ()
    values: dict[tuple[str, ...], float] = field(default_factory=dict)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        assert amount >= 0, "a counter never goes down"
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def _key(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        assert len(labels) == len(self.label_names), self.name
        if labels in self.values or len(self.values) < MAX_SERIES:
            return labels
        return (OTHER,) * len(labels)

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for key, value in sorted(self.values.items()):
            out.append(f"{self.name}{_labels(self.label_names, key)} {_number(value)}")
        return out


@dataclass
class Histogram:
    """Observations in cumulative buckets, with their sum and count, per label set."""

    name: str
    help: str
    label_names: tuple[str, ...] = ()
    buckets: tuple[float, ...] = LATENCY_BUCKETS_S
    # Per label set: a count per bucket (not cumulative; +Inf last), then the sum.
    series: dict[tuple[str, ...], tuple[list[int], list[float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert list(self.buckets) == sorted(set(self.buckets)), "buckets must increase"

    def observe(self, value: float, *labels: str) -> None:
        key = labels
        assert len(key) == len(self.label_names), self.name
        found = self.series.get(key)
        if found is None:
            if len(self.series) >= MAX_SERIES:
                key = (OTHER,) * len(labels)
                found = self.series.get(key)
            if found is None:
                found = self.series[key] = ([0] * (len(self.buckets) + 1), [0.0])
        counts, total = found
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                counts[index] += 1
                break
        else:
            counts[-1] += 1
        total[0] += value

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, (counts, total) in sorted(self.series.items()):
            running = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                le = 'le="+Inf"' if math.isinf(bound) else f'le="{float(bound)!r}"'
                out.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {running}")
            labels = _labels(self.label_names, key)
            out.append(f"{self.name}_sum{labels} {_number(total[0])}")
            out.append(f"{self.name}_count{labels} {running}")
        return out


@dataclass(frozen=True, slots=True)
class Gauge:
    """A value read at scrape time (its samples are given, not kept)."""

    name: str
    help: str
    label_names: tuple[str, ...]
    samples: Sequence[tuple[tuple[str, ...], float]]

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        for key, value in self.samples:
            out.append(f"{self.name}{_labels(self.label_names, key)} {_number(value)}")
        return out


class Metrics:
    """What one birdbalance process counts."""

    def __init__(self) -> None:
        self.requests = Counter(
            "birdbalance_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
        )
        self.latency = Histogram(
            "birdbalance_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template.",
            ("route",),
        )
        self.entries = Counter(
            "birdbalance_ledger_entries_total",
            "Ledger entry requests by kind and outcome (posted, replayed, refused, failed).",
            ("kind", "outcome"),
        )
        self.deliveries = Counter(
            "birdbalance_webhook_attempts_total",
            "Webhook delivery attempts by outcome (delivered, retrying, dead).",
            ("outcome",),
        )

    def render(self, gauges: Iterable[Gauge] = ()) -> bytes:
        """The exposition text of every metric, then ``gauges``."""
        lines: list[str] = []
        for metric in (self.requests, self.latency, self.entries, self.deliveries):
            lines += metric.lines()
        for gauge in gauges:
            lines += gauge.lines()
        return ("\n".join(lines) + "\n").encode("utf-8")
