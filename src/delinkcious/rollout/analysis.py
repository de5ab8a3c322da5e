"""Canary analysis, written once as PromQL: the canary's error ratio and p99 latency, per
method, against the stable's over the same window, and how much traffic the canary had.

The same queries serve two controllers: ``delinkcious rollout`` evaluates them against
the Prometheus of ``up --processes --prometheus``; on Kubernetes they sit in the Argo
Rollouts ``AnalysisTemplate`` that ``scripts/generate-manifests`` renders from
``argo_metrics``. Placeholders are Argo's (``{{args.service}}``), so the text is one.

No data is never a pass and never a crash: a method with fewer than ``min_requests``
canary calls in the window gives no verdict; when no method has enough, the verdict is
*inconclusive* (the caller waits, then fails at a deadline); NaN (a ratio of nothing) and
empty results are read as "no figure", explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

REQUESTS = 'delinkcious_requests_total{service="{{args.service}}",version="{{args.%s}}"}'
ERRORS = (
    'delinkcious_requests_total{service="{{args.service}}",version="{{args.%s}}",outcome="error"}'
)
BUCKETS = (
    'delinkcious_request_duration_seconds_bucket{service="{{args.service}}",version="{{args.%s}}"}'
)

# Per method, for one version ("canary" or "stable").
QUERIES = {
    "requests": "sum by (method) (increase(" + REQUESTS + "[{{args.window}}]))",
    "error_ratio": (
        "sum by (method) (rate(" + ERRORS + "[{{args.window}}]))"
        " / sum by (method) (rate(" + REQUESTS + "[{{args.window}}]))"
    ),
    "p99": (
        "histogram_quantile(0.99, sum by (method, le) (rate(" + BUCKETS + "[{{args.window}}])))"
    ),
}


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Thresholds:
    """What a canary may do worse than its stable before it is failed."""

    min_requests: int = 50  # canary calls of a method in the window, before any verdict
    error_margin: float = 0.01  # error ratio points above the stable's
    latency_factor: float = 1.5  # p99 up to this times the stable's ...
    latency_margin: float = 0.025  # ... plus this many seconds (small p99s jitter)


@dataclass
class Verdict:
    outcome: Outcome
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, dict[str, float | None]] = field(default_factory=dict)  # per method

    def summary(self) -> str:
        return f"{self.outcome}: " + ("; ".join(self.reasons) or "no reason")


def query(name: str, version_arg: str, args: Mapping[str, str]) -> str:
    """One query with its placeholders filled (``version_arg``: canary or stable)."""
    text = QUERIES[name].replace("%s", version_arg)
    for key, value in args.items():
        text = text.replace("{{args.%s}}" % key, value)  # noqa: UP031 - Argo's syntax
    return text


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


async def _vector(http: httpx.AsyncClient, prometheus: str, promql: str) -> dict[str, float | None]:
    """An instant query's result by method; NaN and +Inf (no data) as None."""
    response = await http.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus refused the query: {body.get('error')}")
    return {
        sample["metric"].get("method", ""): _number(sample["value"][1])
        for sample in body["data"]["result"]
    }


async def evaluate(
    http: httpx.AsyncClient,
    prometheus: str,
    service: str,
    canary: str,
    stable: str,
    window: str,
    thresholds: Thresholds = Thresholds(),
) -> Verdict:
    args = {"service": service, "canary": canary, "stable": stable, "window": window}
    figures: dict[str, dict[str, float | None]] = {}
    for name in QUERIES:
        for role in ("canary", "stable"):
            for method, value in (await _vector(http, prometheus, query(name, role, args))).items():
                figures.setdefault(method, {})[f"{role}_{name}"] = value
    return judge(figures, thresholds)


def judge(figures: Mapping[str, Mapping[str, float | None]], thresholds: Thresholds) -> Verdict:
    """The verdict from the figures per method (pure: unit-tested on its own)."""
    reasons: list[str] = []
    judged = 0
    for method, values in sorted(figures.items()):
        calls = values.get("canary_requests") or 0.0
        if calls < thresholds.min_requests:
            continue
        judged += 1
        errors = values.get("canary_error_ratio")
        baseline = values.get("stable_error_ratio") or 0.0
        if errors is not None and errors > baseline + thresholds.error_margin:
            reasons.append(
                f"{method}: {errors:.1%} of the canary's calls failed, the stable's {baseline:.1%}"
            )
        p99, stable_p99 = values.get("canary_p99"), values.get("stable_p99")
        if p99 is not None and stable_p99 is not None:
            limit = stable_p99 * thresholds.latency_factor + thresholds.latency_margin
            if p99 > limit:
                reasons.append(
                    f"{method}: p99 {p99 * 1000:.0f} ms on the canary, "
                    f"{stable_p99 * 1000:.0f} ms on the stable"
                )
    table = {method: dict(values) for method, values in figures.items()}
    if reasons:
        return Verdict(Outcome.FAIL, reasons, table)
    if judged == 0:
        most = max(((v.get("canary_requests") or 0.0) for v in figures.values()), default=0.0)
        return Verdict(
            Outcome.INCONCLUSIVE,
            [f"no method had {thresholds.min_requests} canary calls (most: {most:.0f})"],
            table,
        )
    return Verdict(
        Outcome.PASS, [f"{judged} method(s) with enough traffic, none worse than the stable"], table
    )


def argo_metrics(interval: str, count: int) -> list[dict[str, Any]]:
    """The same analysis as Argo Rollouts metrics: traffic first (fails after ``count``
    intervals without enough, the deadline), then the worst method's error-ratio excess
    and p99 ratio, each over methods with enough canary calls (empty: nothing to judge,
    read as 0 — the traffic metric already refuses a pass on no data)."""
    enough = f"({query('requests', 'canary', {})} >= {{{{args.min-requests}}}})"
    worst_errors = (
        f"max(({query('error_ratio', 'canary', {})}) - on (method) group_left() "
        f"(({query('error_ratio', 'stable', {})}) or ({query('requests', 'canary', {})} * 0))"
        f" and on (method) {enough}) or vector(0)"
    )
    worst_latency = (
        f"max(({query('p99', 'canary', {})}) / on (method) ({query('p99', 'stable', {})})"
        f" and on (method) {enough}) or vector(0)"
    )
    prometheus = {"address": "{{args.prometheus}}"}
    return [
        {
            "name": "enough-traffic",
            "interval": interval,
            "count": count,
            "successCondition": "result[0] >= 1",
            "failureCondition": "result[0] < 1",
            "failureLimit": count - 1,  # waiting for traffic: only the last one fails
            "provider": {"prometheus": {**prometheus, "query": f"count({enough}) or vector(0)"}},
        },
        {
            "name": "error-ratio-above-stable",
            "interval": interval,
            "successCondition": "result[0] <= {{args.error-margin}}",
            "failureCondition": "result[0] > {{args.error-margin}}",
            "count": count,
            "failureLimit": 0,
            "provider": {"prometheus": {**prometheus, "query": worst_errors}},
        },
        {
            "name": "p99-ratio-to-stable",
            "interval": interval,
            "successCondition": "result[0] <= {{args.latency-factor}}",
            "failureCondition": "result[0] > {{args.latency-factor}}",
            "count": count,
            "failureLimit": 0,
            "provider": {"prometheus": {**prometheus, "query": worst_latency}},
        },
    ]
