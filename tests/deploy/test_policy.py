"""Policy: checkov's Kubernetes checks on the rendered manifests (each skip justified in
tests/deploy/checkov.yaml or on its object), and the rules we hold every pod to ourselves:
the restricted Pod Security Standard, measured resources, probes, pinned images."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import ENVIRONMENTS, ROOT, Obj, containers, ours, workloads

CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
CONFIG = Path(__file__).with_name("checkov.yaml")


def test_checkov_finds_nothing_unjustified(rendered: dict[str, list[Obj]], tmp_path: Path) -> None:
    assert CHECKOV.exists(), "make test installs checkov into .venv/checkov"
    for name in (*ENVIRONMENTS, "logging", "argocd"):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(rendered[name]))
    done = subprocess.run(
        [
            str(CHECKOV),
            "--config-file",
            str(CONFIG),
            "--directory",
            str(tmp_path),
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    passed = sum(report["summary"]["passed"] for report in reports)
    failed = [
        f"{check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']})"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
    assert passed > 500  # it did look
    assert not failed, "\n".join(failed)


def pod_templates(objects: list[Obj]) -> list[tuple[str, Obj]]:
    return [(w["metadata"]["name"], w["spec"]["template"]["spec"]) for w in workloads(objects)]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_pod_meets_the_restricted_pod_security_standard(
    rendered: dict[str, list[Obj]], environment: str
) -> None:
    for name, pod in pod_templates(rendered[environment]):
        security = pod.get("securityContext", {})
        assert security.get("runAsNonRoot") is True, name
        assert security.get("runAsUser", 0) > 0, name
        assert security.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        assert pod.get("automountServiceAccountToken") is False, name
        assert not pod.get("hostNetwork") and not pod.get("hostPID"), name
        assert all("hostPath" not in volume for volume in pod.get("volumes", [])), name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert "privileged" not in context, name
            # Read-only everywhere but in dev's services, where live update writes.
            relaxed = environment == "dev" and container["name"] == "server"
            assert context["readOnlyRootFilesystem"] is not relaxed, name


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_container_has_memory_requests_equal_to_limits_and_a_cpu_request(
    rendered: dict[str, list[Obj]], environment: str
) -> None:
    for workload in workloads(rendered[environment]):
        for container in containers(workload):
            resources = container["resources"]
            assert resources["requests"]["memory"] == resources["limits"]["memory"]
            assert resources["requests"]["cpu"]
            assert "cpu" not in resources["limits"]  # see checkov.yaml: CKV_K8S_11


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_image_is_pinned(rendered: dict[str, list[Obj]], environment: str) -> None:
    for workload in workloads(rendered[environment]):
        for container in containers(workload):
            image = container["image"]
            repository, _, tag = image.rpartition(":")
            assert repository and tag and tag != "latest", image
            assert "@" in image or not tag.startswith("sha"), image


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_our_services_have_all_three_probes_and_a_planned_rollout(
    rendered: dict[str, list[Obj]], environment: str
) -> None:
    for name, deployment in ours(rendered[environment]).items():
        (server,) = containers(deployment)
        assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(server), name
        strategy = deployment["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate", name
        assert set(strategy["rollingUpdate"]) == {"maxSurge", "maxUnavailable"}, name
        assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns replicas"
