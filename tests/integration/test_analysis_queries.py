"""Every analysis query, the local controller's and the Argo Rollouts template's, parses
in promtool (as recording rules of a generated file)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from delinkcious.rollout.analysis import QUERIES, argo_metrics, query

ARGS = {
    "service": "links",
    "canary": "2.0.0",
    "stable": "1.0.0",
    "window": "30s",
    "min-requests": "50",
    "error-margin": "0.01",
    "latency-factor": "1.5",
    "prometheus": "http://prometheus:9090",
}


def fill(text: str) -> str:
    for key, value in ARGS.items():
        text = text.replace("{{args.%s}}" % key, value)  # noqa: UP031
    return text


def test_every_query_parses(tmp_path: Path) -> None:
    expressions = [query(name, role, ARGS) for name in QUERIES for role in ("canary", "stable")]
    expressions += [fill(m["provider"]["prometheus"]["query"]) for m in argo_metrics("30s", 5)]
    assert all("{{" not in expression for expression in expressions)
    rules = {
        "groups": [
            {
                "name": "analysis",
                "rules": [
                    {"record": f"analysis:query_{n}", "expr": expression}
                    for n, expression in enumerate(expressions)
                ],
            }
        ]
    }
    path = tmp_path / "analysis.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in done.stdout
