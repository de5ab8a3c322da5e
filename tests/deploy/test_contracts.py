"""Contracts between the manifests and the program, derived from the service registry:
the manifests deploy exactly the services the code has, configure them only with settings
the program reads and with every setting it requires, probe what it serves, and allow on
the network exactly the calls the registry says it makes."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute

from delinkcious.cli.serving import DRAIN_SECONDS
from delinkcious.gateway.health import install_health
from delinkcious.platform.build import Build
from delinkcious.platform.config import Settings
from delinkcious.platform.health import Readiness
from delinkcious.registry import SERVICES, check_configuration, service
from tests.deploy.manifests import (
    ENVIRONMENTS,
    KUBE_NAMES,
    ROOT,
    Obj,
    containers,
    environment_of,
    named,
    of_kind,
    ours,
    workloads,
)

BACKEND_PORTS = {"postgres": 5432, "redis": 6379, "nats": 4222}


def served_paths() -> set[str]:
    app = FastAPI()
    install_health(app, Readiness(), Build("gateway", "0", "0"))
    return {route.path for route in app.routes if isinstance(route, APIRoute)}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_service_has_exactly_one_deployment_running_it(
    rendered: dict[str, list[Obj]], environment: str
) -> None:
    objects = rendered[environment]
    deployments = ours(objects)
    assert set(deployments) == {current.name for current in SERVICES}
    for name, deployment in deployments.items():
        (server,) = containers(deployment)
        assert server["name"] == "server"
        assert server["command"] == ["delinkcious"]
        assert server["args"][:2] == ["serve", name]
        kube = KUBE_NAMES[name]
        for kind in ("Service", "ServiceAccount", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
            named(objects, kind, kube)
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == kube
        autoscaler = named(objects, "HorizontalPodAutoscaler", kube)
        assert autoscaler["spec"]["scaleTargetRef"]["name"] == kube
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        for kind in ("Service", "PodDisruptionBudget"):
            selector = named(objects, kind, kube)["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            assert selector.items() <= labels.items(), (kind, kube)


def _settings_names() -> set[str]:
    return {f"DELINKCIOUS_{field.upper()}" for field in Settings.model_fields}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_variable_set_is_a_setting_the_program_reads(
    rendered: dict[str, list[Obj]], environment: str
) -> None:
    known = _settings_names()
    for name, deployment in ours(rendered[environment]).items():
        env = environment_of(rendered[environment], containers(deployment)[0])
        strangers = {key for key in env if key not in known and not key.startswith("OTEL_")}
        assert not strangers, f"{name} sets variables the program never reads: {strangers}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_setting_the_program_requires_is_set(
    rendered: dict[str, list[Obj]], environment: str
) -> None:
    """The program's own start-up check, run on each container's rendered environment."""
    for name, deployment in ours(rendered[environment]).items():
        env = environment_of(rendered[environment], containers(deployment)[0])
        # Validated from this dict alone: none of this test process's own variables.
        settings = Settings.model_validate(
            {
                key.removeprefix("DELINKCIOUS_").lower(): value
                for key, value in env.items()
                if key.startswith("DELINKCIOUS_")
            }
        )
        check_configuration(name, settings)  # raises, naming the missing setting


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_urls_name_services_and_ports_that_exist(
    rendered: dict[str, list[Obj]], environment: str
) -> None:
    objects = rendered[environment]
    services = {s["metadata"]["name"]: s for s in of_kind(objects, "Service")}
    for name, deployment in ours(objects).items():
        env = environment_of(objects, containers(deployment)[0])
        for key, value in env.items():
            match = re.fullmatch(r"(\w+)://(?:[^@/]*@)?([a-z0-9-]+)(?::(\d+))?(/.*)?", value)
            if match is None or not key.endswith("_URL"):
                continue
            scheme, host, port = match.group(1), match.group(2), match.group(3)
            assert host in services, f"{name}: {key} names no Service {host}"
            ports = {p.get("port") for p in services[host]["spec"].get("ports", [])}
            wanted = int(port) if port else {"http": 80}.get(scheme)
            if services[host]["spec"].get("type") != "ExternalName":
                assert wanted in ports, f"{name}: {key} uses port {wanted} of {host} ({ports})"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_probes_and_ports_are_ones_the_program_serves(
    rendered: dict[str, list[Obj]], environment: str
) -> None:
    paths = served_paths()
    for name, deployment in ours(rendered[environment]).items():
        (server,) = containers(deployment)
        args = server["args"]
        listening = int(args[args.index("--port") + 1])
        assert args[args.index("--host") + 1] == "0.0.0.0"
        ports = {port["name"]: port["containerPort"] for port in server["ports"]}
        assert ports == {"http": listening}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = server[probe]["httpGet"]
            assert get["path"].split("?")[0] in paths and get["port"] == "http", (name, probe)
        assert server["readinessProbe"]["httpGet"]["path"] == "/readyz?scope=local"
        assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
        service_ports = named(rendered[environment], "Service", KUBE_NAMES[name])["spec"]["ports"]
        assert [port["targetPort"] for port in service_ports] == ["http"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_a_stopping_pod_has_time_to_drain(rendered: dict[str, list[Obj]], environment: str) -> None:
    for name, deployment in ours(rendered[environment]).items():
        pod = deployment["spec"]["template"]["spec"]
        pause = containers(deployment)[0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        # Kubernetes counts the preStop pause inside the grace period; then SIGTERM and
        # `serve` drains for up to DRAIN_SECONDS; a few seconds more to close connections.
        assert pod["terminationGracePeriodSeconds"] >= pause + DRAIN_SECONDS + 5, name


def _peers(rule: Obj, direction: str) -> set[str]:
    key = "from" if direction == "ingress" else "to"
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for peer in rule.get(key, [])
        if "podSelector" in peer and "namespaceSelector" not in peer
    }


def test_network_policy_edges_are_the_registry_call_graph(
    rendered: dict[str, list[Obj]],
) -> None:
    policies = of_kind(rendered["staging"], "NetworkPolicy")
    egress: dict[str, set[str]] = defaultdict(set)
    ingress: dict[str, set[str]] = defaultdict(set)
    for policy in policies:
        selected = (
            policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        )
        if selected is None:
            continue
        for rule in policy["spec"].get("egress", []):
            egress[selected] |= _peers(rule, "egress")
        for rule in policy["spec"].get("ingress", []):
            ingress[selected] |= _peers(rule, "ingress")
    calls = {(KUBE_NAMES[s.name], KUBE_NAMES[c]) for s in SERVICES for c in s.calls}
    stores = {
        (KUBE_NAMES[s.name], store)
        for s in SERVICES
        for store, uses in (
            ("postgres", s.database and not s.redis),
            ("redis", s.redis),
            ("nats", s.uses_bus),
        )
        if uses
    }
    assert {(a, b) for a, peers in egress.items() for b in peers} == calls | stores
    assert {(a, b) for b, peers in ingress.items() for a in peers} == calls | stores


def test_the_gateway_is_the_only_service_open_to_all(rendered: dict[str, list[Obj]]) -> None:
    for policy in of_kind(rendered["staging"], "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            if "from" not in rule:
                assert policy["metadata"]["name"] == "gateway"


def test_the_namespace_quota_fits_every_deployment_at_its_maximum_during_a_rollout(
    rendered: dict[str, list[Obj]],
) -> None:
    for environment in ENVIRONMENTS:
        objects = rendered[environment]
        need = {"cpu": 0.0, "memory": 0.0, "pods": 0}
        for workload in workloads(objects):
            name = workload["metadata"]["name"]
            if workload["kind"] == "StatefulSet":
                replicas = workload["spec"]["replicas"]
            else:
                scaler = [
                    h
                    for h in of_kind(objects, "HorizontalPodAutoscaler")
                    if h["metadata"]["name"] == name
                ]
                most = scaler[0]["spec"]["maxReplicas"] if scaler else workload["spec"]["replicas"]
                surge = workload["spec"].get("strategy", {}).get("rollingUpdate", {})
                replicas = most + int(surge.get("maxSurge", 0))
            need["pods"] += replicas
            for container in containers(workload):
                requests = container["resources"]["requests"]
                need["cpu"] += replicas * _cpu(requests["cpu"])
                need["memory"] += replicas * _bytes(requests["memory"])
        hard = named(objects, "ResourceQuota", "delinkcious")["spec"]["hard"]
        assert need["cpu"] <= _cpu(hard["requests.cpu"]), (environment, need)
        assert need["memory"] <= _bytes(hard["requests.memory"]), (environment, need)
        assert need["pods"] <= int(hard["pods"]), (environment, need)


def _cpu(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _bytes(text: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return float(text[:-2]) * units[text[-2:]] if text[-2:] in units else float(text)


def test_prometheus_labels_each_target_with_the_registry_name(
    rendered: dict[str, list[Obj]],
) -> None:
    """The ServiceMonitor's relabeling turns a Kubernetes name into the code's name, as the
    alert rules and Alertmanager's inhibitions expect (`service="social_graph"`)."""
    monitor = named(rendered["staging"], "ServiceMonitor", "delinkcious")
    (endpoint,) = monitor["spec"]["endpoints"]
    for current in SERVICES:
        label = KUBE_NAMES[current.name]  # what the operator sets `service` to first
        for step in endpoint["relabelings"]:
            if step.get("targetLabel") == "service":
                match = re.fullmatch(step["regex"], KUBE_NAMES[current.name])
                if match:
                    label = match.expand(
                        step["replacement"].replace("${", "\\g<").replace("}", ">")
                    )
        assert label == current.name
    assert {"targetLabel": "job", "replacement": "delinkcious", "action": "replace"} in endpoint[
        "relabelings"
    ]


def test_each_environment_is_one_application_per_service_plus_its_platform(
    rendered: dict[str, list[Obj]],
) -> None:
    """What Argo CD's git directory generator will find, read from the ApplicationSet."""
    appset = named(rendered["argocd"], "ApplicationSet", "delinkcious")
    matrix = appset["spec"]["generators"][0]["matrix"]["generators"]
    elements = matrix[0]["list"]["elements"]
    directories = matrix[1]["git"]["directories"]
    assert {e["environment"]: e["autoSync"] for e in elements} == {
        "staging": True,
        "production": False,
    }
    for element in elements:
        found: set[str] = set()
        for entry in directories:
            pattern = entry["path"].replace("{{.environment}}", element["environment"])
            matches = {p.name for p in ROOT.glob(pattern) if p.is_dir()}
            found = found - matches if entry.get("exclude") else found | matches
        assert found == {"platform", *KUBE_NAMES.values()}, element


def test_each_project_allows_exactly_the_kinds_its_environment_holds(
    rendered: dict[str, list[Obj]],
) -> None:
    for environment in ("staging", "production"):
        project = named(rendered["argocd"], "AppProject", f"delinkcious-{environment}")
        allowed = {item["kind"] for item in project["spec"]["namespaceResourceWhitelist"]}
        # Secrets are applied apart from Git, so Argo CD never manages one.
        held = {obj["kind"] for obj in rendered[environment]} - {"Namespace", "Secret"}
        assert held <= allowed, held - allowed
    everywhere = {obj["kind"] for env in ("staging", "production") for obj in rendered[env]}
    listed = {
        item["kind"]
        for env in ("staging", "production")
        for item in named(rendered["argocd"], "AppProject", f"delinkcious-{env}")["spec"][
            "namespaceResourceWhitelist"
        ]
    }
    assert listed == everywhere - {"Namespace", "Secret"}


def test_backend_passwords_come_from_the_secret_of_the_service_that_uses_them(
    rendered: dict[str, list[Obj]],
) -> None:
    """The in-cluster PostgreSQL creates each role with the very password its service
    presents, and Redis requires news' own."""
    objects = rendered["staging"]
    postgres = environment_of(objects, containers(named(objects, "StatefulSet", "postgres"))[0])
    redis = environment_of(objects, containers(named(objects, "StatefulSet", "redis"))[0])
    for current in SERVICES:
        env = environment_of(objects, containers(ours(objects)[current.name])[0])
        if current.redis:
            assert env[f"{current.env_prefix}_REDIS_PASSWORD"] == redis["REDIS_PASSWORD"]
        elif current.database:
            role = f"{current.name.upper()}_PASSWORD"
            assert env[f"{current.env_prefix}_DATABASE_PASSWORD"] == postgres[role]
            url = env[f"{current.env_prefix}_DATABASE_URL"]
            assert url == f"postgresql://{current.name}@postgres:5432/{current.name}"
    script = (ROOT / "deploy/k8s/components/in-cluster-backends/postgres-init.sh").read_text()
    owners = re.search(r"for service in ([a-z_ ]+); do", script)
    assert owners is not None
    assert set(owners.group(1).split()) == {s.name for s in SERVICES if s.database and not s.redis}


def test_no_secret_is_committed(deploy_copy: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    generated = sorted(deploy_copy.glob("k8s/overlays/*/secrets/*.env"))
    assert len(generated) == 7 * 2 + 6
    values = {line.split("=", 1)[1] for path in generated for line in path.read_text().splitlines()}
    for path in generated:
        in_repo = ROOT / "deploy" / path.relative_to(deploy_copy)
        ignored = subprocess.run(["git", "check-ignore", "-q", str(in_repo)], cwd=ROOT)
        assert ignored.returncode == 0, f"{in_repo} would not be ignored by git"
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    for name in tracked:
        text = (ROOT / name).read_text(errors="replace") if (ROOT / name).is_file() else ""
        assert not any(value in text for value in values), name
        for obj in yaml.safe_load_all(text) if name.endswith((".yaml", ".yml")) else []:
            if isinstance(obj, dict) and obj.get("kind") == "Secret":
                pytest.fail(f"{name} commits a Secret object")


def test_the_registry_and_the_manifests_agree_on_the_names(rendered: dict[str, list[Obj]]) -> None:
    for current in SERVICES:
        assert service(current.name) is current
        assert "_" not in KUBE_NAMES[current.name]
    images = {
        container["image"]
        for deployment in ours(rendered["staging"]).values()
        for container in containers(deployment)
    }
    assert len(images) == 1  # one image for every service
