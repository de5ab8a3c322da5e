"""The canary verdict from its figures: no data is never a pass, NaN is no figure."""

from __future__ import annotations

import math

from delinkcious.rollout.analysis import Outcome, Thresholds, _number, judge, query

T = Thresholds(min_requests=50)


def figures(**values: float | None) -> dict[str, dict[str, float | None]]:
    return {"get_links": dict(values)}


def test_a_canary_no_worse_than_its_stable_passes() -> None:
    verdict = judge(
        figures(
            canary_requests=120,
            canary_error_ratio=0.01,
            stable_error_ratio=0.01,
            canary_p99=0.020,
            stable_p99=0.018,
        ),
        T,
    )
    assert verdict.outcome is Outcome.PASS


def test_more_errors_than_the_stable_plus_the_margin_fails() -> None:
    verdict = judge(figures(canary_requests=120, canary_error_ratio=0.3, stable_error_ratio=0.0), T)
    assert verdict.outcome is Outcome.FAIL
    assert "30.0% of the canary's calls failed, the stable's 0.0%" in verdict.reasons[0]


def test_a_slower_p99_fails() -> None:
    verdict = judge(figures(canary_requests=120, canary_p99=0.5, stable_p99=0.05), T)
    assert verdict.outcome is Outcome.FAIL and "p99 500 ms" in verdict.reasons[0]


def test_too_little_traffic_is_inconclusive_never_a_pass() -> None:
    for shown in (figures(canary_requests=49, canary_error_ratio=0.0), figures(), {}):
        verdict = judge(shown, T)
        assert verdict.outcome is Outcome.INCONCLUSIVE


def test_nan_and_infinity_are_no_figure() -> None:
    assert _number("NaN") is None and _number("+Inf") is None and _number("0.5") == 0.5
    verdict = judge(
        figures(
            canary_requests=100,
            canary_error_ratio=None,
            stable_error_ratio=None,
            canary_p99=None,
            stable_p99=math.nan,
        ),
        T,
    )
    assert verdict.outcome is Outcome.PASS  # enough calls, none failed: nothing worse


def test_queries_are_filled_for_one_version() -> None:
    text = query("requests", "canary", {"service": "links", "canary": "2.0", "window": "30s"})
    assert text == (
        'sum by (method) (increase(delinkcious_requests_total{service="links",version="2.0"}[30s]))'
    )
