"""Alerting as code, checked with the real tools from Debian's packages.

``promtool`` (package ``prometheus``) checks and unit-tests the rules and checks the
Prometheus config; ``amtool`` and ``prometheus-alertmanager`` (package
``prometheus-alertmanager``) check the Alertmanager config and its routing tree. Every
PromQL expression, in the rules and in the Grafana dashboard, must parse (promtool checks
the dashboard's as recording rules of a generated rule file), and every metric it names
must be one a running Delinkcious exports, or an external one on the allow-list below.

``scripts/ensure-debian-tools`` (run by ``make test``) installs the tools when they
are missing; a missing tool here is a failure, not a skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from delinkcious.cli.processes import ports
from delinkcious.registry import NAMES
from tests.e2e.conftest import (
    CHECKER_ENV,
    Server,
    free_port,
    new_username,
    register_and_login,
)

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
RULES = OBSERVABILITY / "rules" / "delinkcious.rules.yml"
RULE_TESTS = OBSERVABILITY / "tests" / "delinkcious.test.yml"
PROMETHEUS_CONFIG = OBSERVABILITY / "prometheus.yml"
ALERTMANAGER_CONFIG = OBSERVABILITY / "alertmanager.yml"
DASHBOARD = OBSERVABILITY / "grafana" / "delinkcious-dashboard.json"
BACKENDS = ROOT / "deploy" / "k8s" / "components" / "in-cluster-backends"
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"

ALERTS = {
    "SlowAddLink",
    "HighErrorRate",
    "ServiceDown",
    "OutboxBacklog",
    "LinkChecksFailing",
    "VolumeFillingUp",
}
RECEIVERS = {"page": "pager", "ticket": "tickets"}

# Metrics the rules and the dashboard may name although Delinkcious does not export them.
EXTERNAL_METRICS = {
    "up": "synthesized by Prometheus for every scrape target (ServiceDown)",
    "kubelet_volume_stats_available_bytes": "the kubelet's, per PVC (VolumeFillingUp)",
    "kubelet_volume_stats_capacity_bytes": "the kubelet's, per PVC (VolumeFillingUp)",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run make test, which installs it")
    return path


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(argv[0]), *argv[1:]], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


# --- PromQL: the expressions, and the metric names in them ----------------------------------

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    |(?P<number>\d[\w.]*|\.\d[\w.]*)             # numbers and durations: 0.5, 5m, 1e3
    |(?P<ident>[A-Za-z_:][\w:]*)
    |(?P<punct>[{}()\[\],=])
    |(?P<space>\s+)
    |(?P<other>.)
    """,
    re.VERBOSE,
)
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _GROUPING | {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords or labels).

    A small tokenizer is enough for our own expressions: it skips strings, durations,
    label matchers and grouping lists, and takes an identifier that is not followed by
    ``(`` (a function) and is not a keyword or an aggregation operator. ``{__name__="x"}``
    counts as ``x``.
    """
    tokens = [
        (match.lastgroup, match.group())
        for match in _TOKEN.finditer(expr)
        if match.lastgroup != "space"
    ]
    names: set[str] = set()
    braces = brackets = 0
    skip_list = False  # the next "( ... )" is a grouping label list
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if kind == "punct":
            if text == "{":
                braces += 1
            elif text == "}":
                braces -= 1
            elif text == "[":
                brackets += 1
            elif text == "]":
                brackets -= 1
            elif text == "(" and skip_list:
                index = tokens.index((kind, ")"), index)  # label lists do not nest
                skip_list = False
        elif kind == "ident" and braces:
            if text == "__name__" and following == "=" and index + 2 < len(tokens):
                names.add(tokens[index + 2][1][1:-1])
        elif kind == "ident" and not brackets:
            if text.lower() in _GROUPING:
                skip_list = True
            elif text.lower() in _KEYWORDS or text in _AGGREGATIONS or following == "(":
                pass
            else:
                names.add(text)
        index += 1
    return names


def grafana_free(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced by what they may stand for."""
    expr = re.sub(r"\$(?:__rate_interval|__interval|__range)\b", "5m", expr)
    expr = re.sub(r"\$\{?\w+\}?", ".*", expr)  # $service, ${method}: regex matchers only
    assert "$" not in expr, expr
    return expr


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, expr) for every panel query and every query variable of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r}", grafana_free(target["expr"])))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = (
            variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        )
        values = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert values, (
            f"variable {variable['name']}: {query!r} is not label_values(selector, label)"
        )
        found.append((f"variable {variable['name']!r}", grafana_free(values[1])))
    return found


def rule_expressions() -> list[tuple[str, str]]:
    return [(f"rule {rule.get('alert') or rule['record']}", rule["expr"]) for rule in rules()]


# --- the rules -------------------------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    result = run("promtool", "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run("promtool", "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The unit tests are not vacuous: SlowAddLink at 8 s instead of 5 s fails them."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    text = RULES.read_text()
    broken = text.replace(") > 5\n", ") > 8\n", 1)
    assert broken != text
    (tmp_path / "rules" / RULES.name).write_text(broken)
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    result = run("promtool", "test", "rules", str(tmp_path / "tests" / RULE_TESTS.name))
    assert result.returncode != 0
    assert "SlowAddLink" in result.stdout + result.stderr


def test_the_issue_s_alerts_with_two_severities_and_runbooks() -> None:
    alerts = alert_rules()
    assert {rule["alert"] for rule in alerts} == ALERTS
    for rule in alerts:
        assert rule["labels"]["severity"] in RECEIVERS, rule["alert"]
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys(), rule["alert"]
    severities = {rule["alert"]: rule["labels"]["severity"] for rule in alerts}
    assert severities["SlowAddLink"] == "page"
    assert severities["ServiceDown"] == "page"
    slow = next(rule for rule in alerts if rule["alert"] == "SlowAddLink")
    assert slow["for"] == "1m"
    assert re.search(r'method="add_link".*\)\s*>\s*5\s*$', slow["expr"], re.DOTALL)
    volume = {
        rule["labels"]["severity"]: rule["expr"]
        for rule in alerts
        if rule["alert"] == "VolumeFillingUp"
    }
    assert volume.keys() == {"ticket", "page"}
    assert volume["ticket"].rstrip().endswith("> 0.75")
    assert volume["page"].rstrip().endswith("> 0.95")


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    """For every alert (and both volume severities): a case where it fires, one where not."""
    fires: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            if check["exp_alerts"]:
                for alert in check["exp_alerts"]:
                    assert "severity" in alert["exp_labels"], case["name"]
                    fires.add((check["alertname"], alert["exp_labels"]["severity"]))
            else:
                quiet.add(check["alertname"])
    expected = {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()}
    assert expected - fires == set(), "alerts never seen firing in the unit tests"
    assert ALERTS - quiet == set(), "alerts never checked to stay quiet in the unit tests"


def _fired() -> list[tuple[str, dict[str, str]]]:
    """(alertname, expected labels) of every alert the unit tests expect to fire."""
    return [
        (check["alertname"], alert["exp_labels"])
        for case in load_yaml(RULE_TESTS)["tests"]
        for check in case.get("alert_rule_test", [])
        for alert in check["exp_alerts"]
    ]


def test_firing_alerts_name_their_service() -> None:
    """Routing groups by service and inhibition compares it: the unit tests show it is set,
    on every alert but the volumes', which name their backend instead."""
    fired = _fired()
    with_service = {name for name, labels in fired if labels.get("service")}
    assert with_service == ALERTS - {"VolumeFillingUp"}
    volumes = [labels for name, labels in fired if name == "VolumeFillingUp"]
    assert volumes
    for labels in volumes:
        assert "service" not in labels, labels
        assert labels["backend"] in {"postgres", "redis", "nats"}, labels
        assert labels["persistentvolumeclaim"] == f"data-{labels['backend']}-0", labels


def test_every_aggregation_keeps_the_namespace() -> None:
    """One Prometheus may scrape several environments (namespaces): no rule sums them
    together. Every ``by (...)`` of every rule lists ``namespace``, none uses ``without``."""
    for where, expr in rule_expressions():
        assert not re.search(r"\bwithout\s*\(", expr), where
        for grouping in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            labels = {label.strip() for label in grouping.split(",")}
            assert "namespace" in labels, f"{where}: by ({grouping})"


def test_the_unit_tests_separate_namespaces() -> None:
    """Alerts of two namespaces for the same service fire apart (the per-environment cases)."""
    fired = _fired()
    for alert in ("HighErrorRate", "SlowAddLink", "LinkChecksFailing"):
        namespaces = {labels.get("namespace") for name, labels in fired if name == alert}
        assert None in namespaces, f"{alert}: no case without a namespace (local)"
        assert namespaces - {None}, f"{alert}: no case with a namespace (Kubernetes)"
    both = {
        labels["namespace"]
        for name, labels in fired
        if name == "HighErrorRate" and labels.get("service") == "users" and "namespace" in labels
    }
    assert both == {"delinkcious-staging", "delinkcious-production"}


def _volume_patterns() -> tuple[str, str]:
    """The namespace and claim patterns of the VolumeFillingUp rules (the same in both)."""
    found = set()
    for rule in alert_rules():
        if rule["alert"] == "VolumeFillingUp":
            namespaces = set(re.findall(r'namespace=~"([^"]+)"', rule["expr"]))
            claims = set(re.findall(r'persistentvolumeclaim=~"([^"]+)"', rule["expr"]))
            assert len(namespaces) == len(claims) == 1, rule["expr"]
            found.add((namespaces.pop(), claims.pop()))
    (patterns,) = found
    return patterns


def test_volume_alerts_watch_the_in_cluster_backends_claims() -> None:
    """The claims VolumeFillingUp watches are those the in-cluster backends' StatefulSets
    make (``<template>-<statefulset>-<ordinal>``) in the environments' namespaces, and no
    other: Prometheus regexes are anchored, as ``re.fullmatch``."""
    namespace_pattern, claim_pattern = _volume_patterns()
    claims = {
        f"{template['metadata']['name']}-{document['metadata']['name']}-0"
        for path in sorted(BACKENDS.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document and document.get("kind") == "StatefulSet"
        for template in document["spec"].get("volumeClaimTemplates", [])
    }
    assert claims == {"data-postgres-0", "data-redis-0", "data-nats-0"}
    for claim in claims | {"data-postgres-1", "data-nats-12"}:
        assert re.fullmatch(claim_pattern, claim), claim
    for claim in ("links-postgres-0", "data-postgres-0-old", "data-mysql-0", "grafana-data"):
        assert not re.fullmatch(claim_pattern, claim), claim
    namespaces = {
        kustomization["namespace"]
        for path in OVERLAYS.glob("*/**/kustomization.yaml")
        if "namespace" in (kustomization := load_yaml(path) or {})
    }
    assert {"delinkcious-dev", "delinkcious-staging", "delinkcious-production"} <= namespaces
    for namespace in namespaces | {"delinkcious"}:
        assert re.fullmatch(namespace_pattern, namespace), namespace
    for namespace in ("default", "monitoring", "kube-system", "notdelinkcious-staging"):
        assert not re.fullmatch(namespace_pattern, namespace), namespace


# --- Prometheus config ------------------------------------------------------------------------


def test_promtool_checks_the_prometheus_config_and_finds_the_rules() -> None:
    result = run("promtool", "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout  # the glob resolves to our file
    assert str(RULES.relative_to(OBSERVABILITY)) in result.stdout


def _job(config: dict[str, Any]) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = config["scrape_configs"]
    (job,) = [job for job in jobs if job["job_name"] == "delinkcious"]
    return job


def test_the_embedded_shape_is_one_target_labelled_delinkcious() -> None:
    job = _job(load_yaml(PROMETHEUS_CONFIG))
    assert job["honor_labels"] is True  # the metrics' own `service` label wins
    assert job["static_configs"] == [
        {"targets": ["localhost:5000"], "labels": {"service": "delinkcious"}}
    ]


def test_the_processes_alternative_matches_up_processes(tmp_path: Path) -> None:
    """The commented processes block, switched on, is valid and has one target per service
    on the ports ``delinkcious up --processes`` uses."""
    text = PROMETHEUS_CONFIG.read_text()
    block = re.search(r"[ \t]*# BEGIN processes\n(.*?)\n[ \t]*# END processes", text, re.DOTALL)
    assert block, "no processes block in prometheus.yml"
    uncommented = "\n".join(re.sub(r"^(\s*)# ?", r"\1", line) for line in block[1].splitlines())
    embedded = '- targets: ["localhost:5000"]\n        labels:\n          service: delinkcious\n'
    assert embedded in text
    switched = text.replace(embedded, "").replace(block[0], uncommented)
    shutil.copytree(OBSERVABILITY / "rules", tmp_path / "rules")
    (tmp_path / "prometheus.yml").write_text(switched)
    result = run("promtool", "check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr

    groups = _job(yaml.safe_load(switched))["static_configs"]
    assert {group["labels"]["service"]: group["targets"] for group in groups} == {
        service: [f"localhost:{port}"] for service, port in ports(5000).items()
    }
    assert {group["labels"]["service"] for group in groups} == set(NAMES)


# --- Alertmanager config ------------------------------------------------------------------------


def test_amtool_checks_the_alertmanager_config() -> None:
    result = run("amtool", "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alertmanager_itself_loads_the_config(tmp_path: Path) -> None:
    """The real daemon, not only amtool, accepts it (and reports it back as loaded)."""
    port = free_port()
    process = subprocess.Popen(
        [
            tool("prometheus-alertmanager"),
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--storage.path={tmp_path}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/status") as reply:
                    status = json.load(reply)
                break
            except OSError:
                time.sleep(0.1)
        assert status is not None, process.communicate(timeout=5)[0] if process.poll() else ""
        loaded = yaml.safe_load(status["config"]["original"])
        assert {receiver["name"] for receiver in loaded["receivers"]} == set(RECEIVERS.values())
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        *[
            ({"alertname": rule["alert"], "severity": rule["labels"]["severity"]},
             RECEIVERS[rule["labels"]["severity"]])
            for rule in alert_rules()
        ],
        ({"alertname": "Unclassified"}, "tickets"),
    ],
    ids=lambda value: "-".join(value.values()) if isinstance(value, dict) else value,
)  # fmt: skip
def test_routing_sends_each_severity_to_its_receiver(labels: dict[str, str], receiver: str) -> None:
    pairs = [f"{name}={value}" for name, value in {**labels, "service": "links"}.items()]
    result = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *pairs,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_grouping_and_inhibition_are_configured() -> None:
    """What the live test exercises, stated: group by alert, namespace and service (or
    backend); ServiceDown inhibits the same service's other alerts in the same namespace (not
    the volumes); a page hides its ticket, on the same claim of the same namespace."""
    config = load_yaml(ALERTMANAGER_CONFIG)
    assert config["route"]["group_by"] == ["alertname", "namespace", "service", "backend"]
    down, superseded = config["inhibit_rules"]
    assert down["source_matchers"] == ['alertname="ServiceDown"']
    assert down["target_matchers"] == ['alertname!~"ServiceDown|VolumeFillingUp"']
    assert down["equal"] == ["namespace", "service"]
    assert superseded["source_matchers"] == ['severity="page"']
    assert superseded["target_matchers"] == ['severity="ticket"']
    assert {"alertname", "namespace", "persistentvolumeclaim"} <= set(superseded["equal"])
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            assert webhook["url"].startswith("http://") and ".invalid/" in webhook["url"]


# --- the dashboard ------------------------------------------------------------------------------


def test_the_dashboard_shows_rate_errors_latency_per_service_method_version() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "delinkcious"
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "service", "method", "version"} <= variables.keys()
    # One environment at a time (no "All" that would sum them); where the targets have no
    # namespace (locally) the variable is empty and `namespace=~""` selects every series.
    namespace = variables["namespace"]
    assert (namespace["multi"], namespace["includeAll"]) == (False, False)
    queries: dict[str, list[str]] = {}
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        queries[panel["title"]] = [target["expr"] for target in panel["targets"]]
    per_call = "by (service, method, version)"
    assert per_call in queries["Request rate"][0]
    assert per_call in queries["Error ratio"][0] and 'outcome="error"' in queries["Error ratio"][0]
    assert queries["Latency p50 (and mean)"][0].startswith("histogram_quantile(0.5,")
    assert queries["Latency p99"][0].startswith("histogram_quantile(0.99,")
    for title in ("Request rate", "Error ratio", "Latency p50 (and mean)", "Latency p99"):
        for expr in queries[title]:
            assert 'version=~"$version"' in expr, title
    for title, exprs in queries.items():
        for expr in exprs:
            selectors = re.findall(r"\b(?:delinkcious_\w+|up)(\{[^}]*\})?", expr)
            assert selectors, title
            for selector in selectors:
                assert 'namespace=~"$namespace"' in selector, f"{title}: {expr}"
    assert "by (route, method, status)" in queries["HTTP requests by route and status"][0]
    expected = {
        "Events published": "delinkcious_events_published_total",
        "Events consumed": "delinkcious_events_consumed_total",
        "Outbox pending": "delinkcious_outbox_pending",
        "Link checks": "delinkcious_link_checks_total",
    }
    for title, metric in expected.items():
        assert metric in queries[title][0], title


# --- every expression parses; every metric exists ------------------------------------------------


def test_the_metric_name_extractor() -> None:
    """The tokenizer the next tests rely on, on the shapes of expression they contain."""
    assert metric_names(
        'histogram_quantile(0.5, sum by (service, le) (rate(a_bucket{method="x", le=~"5|+Inf"}'
        "[5m]))) > 5"
    ) == {"a_bucket"}
    assert metric_names(
        'sum without (instance) (rate(b_total{outcome="error"}[1m] offset 5m)) / on (service) '
        "group_left (version) c:ratio and d unless e == bool 1"
    ) == {"b_total", "c:ratio", "d", "e"}
    assert metric_names(
        'label_replace(1 - f / g, "service", "$1", "pvc", "(links|users)-.+") > 0.75'
    ) == {"f", "g"}
    assert metric_names('{__name__="h", job="x"} or up{job="delinkcious"} == 0') == {"h", "up"}
    assert metric_names("count(max_over_time(i[10m:1m]))") == {"i"}


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    """Each expression of the rules and of the dashboard, as a recording rule for promtool."""
    expressions = rule_expressions() + dashboard_expressions()
    generated = {
        "groups": [
            {
                "name": "every-expression",
                "rules": [
                    {"record": f"expression_{index}", "expr": expr, "labels": {"where": where}}
                    for index, (where, expr) in enumerate(expressions)
                ],
            }
        ]
    }
    path = tmp_path / "expressions.rules.yml"
    path.write_text(yaml.safe_dump(generated, sort_keys=False))
    result = run("promtool", "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in result.stdout


def test_a_broken_expression_fails_the_parse(tmp_path: Path) -> None:
    """The method above detects errors: an unbalanced expression is refused."""
    path = tmp_path / "broken.rules.yml"
    path.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "g", "rules": [{"record": "r", "expr": "sum(rate(x[5m])"}]}]}
        )
    )
    result = run("promtool", "check", "rules", str(path))
    assert result.returncode != 0


def test_every_expression_names_metrics() -> None:
    for where, expr in rule_expressions() + dashboard_expressions():
        assert metric_names(expr), f"{where}: no metric found in {expr!r}"


@pytest.fixture(scope="module")
def exported_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """The sample names a running ``delinkcious up`` serves on /metrics after real traffic
    (every service method, an event through the bus, a link check), polled until the
    asynchronous ones (consumed events, link checks) show up or 30 s pass."""
    server = Server(tmp_path_factory.mktemp("metrics"), env=dict(CHECKER_ENV)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as api:
            alice_name = new_username()
            alice = register_and_login(api, alice_name)
            bob = register_and_login(api)
            followed = api.post("/v1/following", headers=bob, json={"followed": alice_name})
            assert followed.status_code == 201, followed.text
            added = api.post(
                "/v1/links", headers=alice, json={"url": "http://127.0.0.1:9/x", "title": "x"}
            )
            assert added.status_code == 201, added.text
            api.put("/v1/links", headers=alice, json={"url": "http://127.0.0.1:9/x", "title": "y"})
            api.get("/v1/links", headers=alice, params={"url_regex": "a("})  # a client error
            api.get("/v1/news", headers=bob)
            api.get("/v1/followers", headers=alice)
            api.delete("/v1/following", headers=bob, params={"followed": alice_name})
            needed = {
                name
                for _, expr in rule_expressions() + dashboard_expressions()
                for name in metric_names(expr)
                if name.startswith("delinkcious_")
            }
            deadline = time.monotonic() + 30
            while True:
                scraped = api.get("/metrics")
                assert scraped.status_code == 200, f"GET /metrics: {scraped.status_code}"
                exported = _sample_names(scraped.text)
                if needed <= exported or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        yield exported
    finally:
        server.stop()


def _sample_names(exposition: str) -> set[str]:
    """Sample names of a Prometheus text exposition (``x_bucket``, ``x_sum``, ``x_total`` ...)."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][\w:]*", line).group())  # type: ignore[union-attr]
    return names


def test_every_metric_the_rules_and_dashboard_name_is_exported(exported_metrics: set[str]) -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    named: dict[str, list[str]] = {}
    for where, expr in rule_expressions() + dashboard_expressions():
        for name in metric_names(expr):
            named.setdefault(name, []).append(where)
    unknown = {
        name: where
        for name, where in named.items()
        if name not in exported_metrics and name not in recorded and name not in EXTERNAL_METRICS
    }
    assert unknown == {}, (
        f"named but not exported by Delinkcious: {unknown}\n"
        f"exported: {sorted(n for n in exported_metrics if n.startswith('delinkcious_'))}"
    )
    assert not any(name.startswith("delinkcious_") for name in EXTERNAL_METRICS)
    # The allow-list holds only what is really named (no stale exemptions).
    assert set(EXTERNAL_METRICS) <= named.keys()
