"""Per-request counters and latency histograms, recorded in one cheap step.

Every request updates a counter (by outcome) and a histogram. prometheus-client's own
``Counter`` and ``Histogram`` do it in five Python calls and three lock round trips per
request (``inc`` on the counter; ``observe`` on the histogram's sum and on its bucket),
which was a fifth of what the observability chain cost ``GET /v1/links``. Here a request
is one ``record``: a dict lookup, a ``bisect`` and three additions under one lock. The
series reach ``/metrics`` through prometheus-client's custom-collector API, as the same
counter and histogram families (names, help, labels, buckets) those classes would expose.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class RequestSeries:
    """One label set's counts by outcome, bucket counts and sum of seconds."""

    __slots__ = ("_bounds", "_lock", "buckets", "outcomes", "seconds")

    def __init__(
        self, bounds: tuple[float, ...], lock: threading.Lock, outcomes: Sequence[str]
    ) -> None:
        self._bounds = bounds
        self._lock = lock
        self.outcomes = dict.fromkeys(outcomes, 0)
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.seconds = 0.0

    def record(self, outcome: str, seconds: float) -> None:
        """One request that ended with ``outcome`` after ``seconds``."""
        with self._lock:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            self.buckets[bisect_left(self._bounds, seconds)] += 1  # bucket i: <= bounds[i]
            self.seconds += seconds


class RequestMetrics(Collector):
    """A counter ``<counter>_total{labels..., outcome}`` and a histogram ``<histogram>{labels...}``.

    ``series(*label_values)`` gives the series to ``record`` into (keep it: looking it
    up is the part that costs). The outcome label's values come with each record; those in
    ``outcomes`` are exported from the start, at 0, so that a rate of errors is 0 rather
    than absent before the first error.
    """

    def __init__(
        self,
        counter: tuple[str, str],
        histogram: tuple[str, str],
        labels: Sequence[str],
        outcome_label: str,
        buckets: Sequence[float],
        outcomes: Sequence[str] = (),
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self._counter_name, self._counter_help = counter
        self._histogram_name, self._histogram_help = histogram
        self._labels = tuple(labels)
        self._outcome_label = outcome_label
        self._bounds = tuple(sorted(buckets))
        self._outcomes = tuple(outcomes)
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], RequestSeries] = {}
        if registry is not None:
            registry.register(self)

    def series(self, *label_values: str) -> RequestSeries:
        if len(label_values) != len(self._labels):
            raise ValueError(f"expected values for {self._labels}, got {label_values}")
        with self._lock:
            found = self._series.get(label_values)
            if found is None:
                found = RequestSeries(self._bounds, self._lock, self._outcomes)
                self._series[label_values] = found
            return found

    def describe(self) -> Iterator[Metric]:
        """The families, empty: lets the registry check their names without collecting."""
        yield from self._families()

    def _families(self) -> tuple[CounterMetricFamily, HistogramMetricFamily]:
        counter = CounterMetricFamily(
            self._counter_name, self._counter_help, labels=(*self._labels, self._outcome_label)
        )
        histogram = HistogramMetricFamily(
            self._histogram_name, self._histogram_help, labels=self._labels
        )
        return counter, histogram

    def collect(self) -> Iterator[Metric]:
        counter, histogram = self._families()
        bounds = [floatToGoString(bound) for bound in self._bounds] + ["+Inf"]
        with self._lock:
            snapshot = [
                (values, dict(s.outcomes), list(s.buckets), s.seconds)
                for values, s in self._series.items()
            ]
        for values, outcomes, buckets, seconds in snapshot:
            for outcome, count in outcomes.items():
                counter.add_metric([*values, outcome], count)
            cumulative, total = [], 0
            for bound, count in zip(bounds, buckets, strict=True):
                total += count
                cumulative.append((bound, total))
            histogram.add_metric(list(values), cumulative, seconds)
        yield counter
        yield histogram
