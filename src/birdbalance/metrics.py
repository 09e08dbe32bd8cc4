"""Metrics in the Prometheus text format (version 0.0.4), for the whole node.

Counters and histograms are plain dictionaries updated on the event loop (every request,
entry and delivery is recorded there, so no lock is needed). Under ``birdbalance serve``
each update is also written through to the process's file of
:class:`~birdbalance.shared_counters.SharedCounters`, and a scrape adds up every worker's
file, so whichever worker answers reports the node. :func:`render` turns them, plus
gauges read at scrape time, into the exposition text.
Every metric has a bounded number of series: past :data:`MAX_SERIES` label sets, new
ones are counted under the label value ``other``, so a flood of odd paths or statuses
cannot grow memory.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from birdbalance.shared_counters import SharedCounters

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
_BUCKET: Final = "bucket"
_SUM: Final = "sum"
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
    #: Where the node's processes add up their counts (None: this process alone).
    shared: SharedCounters | None = None
    _slots: dict[tuple[str, ...], int | None] = field(default_factory=dict)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        assert amount >= 0, "a counter never goes down"
        key = self._key(labels)
        value = self.values[key] = self.values.get(key, 0.0) + amount
        if self.shared is not None:
            slot = self._slots.get(key, -1)
            if slot == -1:
                slot = self._slots[key] = self.shared.slot((self.name, *key))
            if slot is not None:
                self.shared.store(slot, value)

    def merged(self, totals: dict[tuple[str, ...], float]) -> Counter:
        """This counter with the node's values (from :meth:`SharedCounters.total`)."""
        width = len(self.label_names)
        values = {
            key[1:]: value
            for key, value in totals.items()
            if key[0] == self.name and len(key) == width + 1
        }
        return Counter(self.name, self.help, self.label_names, values)

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
    #: Where the node's processes add up their observations (None: this process alone).
    shared: SharedCounters | None = None
    # Per label set: the shared slots of each bucket's count, then of the sum.
    _slots: dict[tuple[str, ...], list[int | None]] = field(default_factory=dict)

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
        # The first bucket whose bound is at least the value (+Inf past the last).
        index = bisect.bisect_left(self.buckets, value)
        counts[index] += 1
        total[0] += value
        if self.shared is not None:
            slots = self._slots.get(key)
            if slots is None:
                slots = self._slots[key] = self._make_slots(self.shared, key)
            if (slot := slots[index]) is not None:
                self.shared.store(slot, counts[index])
            if (slot := slots[-1]) is not None:
                self.shared.store(slot, total[0])

    def _make_slots(self, shared: SharedCounters, key: tuple[str, ...]) -> list[int | None]:
        buckets = [
            shared.slot((self.name, *key, _BUCKET, str(i))) for i in range(len(self.buckets) + 1)
        ]
        return [*buckets, shared.slot((self.name, *key, _SUM))]

    def merged(self, totals: dict[tuple[str, ...], float]) -> Histogram:
        """This histogram with the node's observations."""
        width = len(self.label_names)
        series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        for key, value in totals.items():
            if key[0] != self.name or len(key) not in (width + 2, width + 3):
                continue
            labels = key[1 : width + 1]
            counts, total = series.setdefault(labels, ([0] * (len(self.buckets) + 1), [0.0]))
            if key[width + 1] == _SUM:
                total[0] += value
            elif key[width + 1] == _BUCKET and len(key) == width + 3:
                counts[min(int(key[width + 2]), len(self.buckets))] += int(value)
        return Histogram(self.name, self.help, self.label_names, self.buckets, series)

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
    """What one birdbalance process counts, and with ``shared``, what its node counts."""

    def __init__(self, shared: SharedCounters | None = None) -> None:
        self.shared = shared
        self.requests = Counter(
            "birdbalance_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            shared=shared,
        )
        self.latency = Histogram(
            "birdbalance_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template.",
            ("route",),
            shared=shared,
        )
        self.entries = Counter(
            "birdbalance_ledger_entries_total",
            "Ledger entry requests by kind and outcome (posted, replayed, refused, failed).",
            ("kind", "outcome"),
            shared=shared,
        )
        self.deliveries = Counter(
            "birdbalance_webhook_attempts_total",
            "Webhook delivery attempts by outcome (delivered, retrying, dead).",
            ("outcome",),
            shared=shared,
        )

    def render(self, gauges: Iterable[Gauge] = ()) -> bytes:
        """The exposition text of every metric (the node's, when shared), then ``gauges``."""
        lines: list[str] = []
        metrics: tuple[Counter | Histogram, ...] = (
            self.requests,
            self.latency,
            self.entries,
            self.deliveries,
        )
        if self.shared is not None:
            totals = self.shared.total()
            metrics = tuple(metric.merged(totals) for metric in metrics)
        for metric in metrics:
            lines += metric.lines()
        for gauge in gauges:
            lines += gauge.lines()
        return ("\n".join(lines) + "\n").encode("utf-8")
