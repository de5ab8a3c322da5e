"""``RequestMetrics``: what prometheus-client's Counter and Histogram would expose, cheaper."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from delinkcious.platform.request_metrics import RequestMetrics

BUCKETS = (0.005, 0.1, 1.0, 5.0)
RECORDS = [
    (("links", "get_links"), "success", 0.002),
    (("links", "get_links"), "success", 0.005),  # on a bound: counted in that bucket
    (("links", "get_links"), "error", 0.3),
    (("links", "add_link"), "client_error", 7.5),  # above every bound: +Inf only
    (("users", "login"), "success", 1.0),
]


def ours(registry: CollectorRegistry, outcomes: tuple[str, ...] = ()) -> RequestMetrics:
    return RequestMetrics(
        counter=("demo_requests_total", "Requests."),
        histogram=("demo_request_duration_seconds", "Durations."),
        labels=("service", "method"),
        outcome_label="outcome",
        buckets=BUCKETS,
        outcomes=outcomes,
        registry=registry,
    )


# A sample as ``exposed`` gives it: its name, its labels as sorted pairs and its value.
Sample = tuple[str, tuple[tuple[str, str], ...], float]
Families = dict[str, tuple[str, str, set[Sample]]]


def exposed(registry: CollectorRegistry) -> Families:
    """Each family by name: its type, its help and its samples (labels as sorted pairs)."""
    text = generate_latest(registry).decode()
    return {
        family.name: (
            family.type,
            family.documentation,
            {(s.name, tuple(sorted(s.labels.items())), s.value) for s in family.samples},
        )
        for family in text_string_to_metric_families(text)
    }


def test_it_exposes_what_a_counter_and_a_histogram_would() -> None:
    theirs_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    counter = Counter(
        "demo_requests_total", "Requests.", ("service", "method", "outcome"),
        registry=theirs_registry,
    )  # fmt: skip
    histogram = Histogram(
        "demo_request_duration_seconds", "Durations.", ("service", "method"),
        buckets=BUCKETS, registry=theirs_registry,
    )  # fmt: skip
    metrics = ours(ours_registry)
    for labels, outcome, seconds in RECORDS:
        counter.labels(*labels, outcome).inc()
        histogram.labels(*labels).observe(seconds)
        metrics.series(*labels).record(outcome, seconds)

    def without_created(families: Families) -> Families:
        """Delinkcious turns the ``*_created`` series off (``disable_created_metrics``)."""
        return {
            name: (kind, text, {s for s in samples if not s[0].endswith("_created")})
            for name, (kind, text, samples) in families.items()
            if not name.endswith("_created")
        }

    assert exposed(ours_registry) == without_created(exposed(theirs_registry))


def test_named_outcomes_are_exported_at_zero_from_the_start() -> None:
    registry = CollectorRegistry()
    ours(registry, outcomes=("success", "error")).series("links", "get_links")
    labels = {"service": "links", "method": "get_links"}
    assert registry.get_sample_value("demo_requests_total", {**labels, "outcome": "error"}) == 0
    assert registry.get_sample_value("demo_request_duration_seconds_count", labels) == 0


def test_records_from_many_threads_are_all_counted() -> None:
    registry = CollectorRegistry()
    series = ours(registry).series("links", "get_links")

    def hammer() -> None:
        for _ in range(20_000):
            series.record("success", 0.001)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    labels = {"service": "links", "method": "get_links"}
    assert registry.get_sample_value("demo_requests_total", {**labels, "outcome": "success"}) == (
        80_000
    )
    assert registry.get_sample_value("demo_request_duration_seconds_count", labels) == 80_000


def test_a_series_needs_a_value_for_every_label() -> None:
    with pytest.raises(ValueError, match="expected values"):
        ours(CollectorRegistry()).series("links")
