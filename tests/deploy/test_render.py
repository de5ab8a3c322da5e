"""Every overlay renders, with every combination of the components the README offers, and
the files derived from others are up to date."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import (
    ENVIRONMENTS,
    KUBE_NAMES,
    ROOT,
    Obj,
    kustomize,
    of_kind,
    ours,
)

# Components an overlay may leave out (delete the line), and the two backends it may swap.
OPTIONAL = ("network-policies", "observability", "vertical-pod-autoscaler", "prometheus")
BACKENDS = ("in-cluster-backends", "external-backends")


def in_namespace(objects: list[Obj], environment: str) -> None:
    """Everything but the Namespace itself lands in the environment's namespace."""
    for obj in objects:
        if obj["kind"] != "Namespace":
            where = obj["metadata"].get("namespace")
            assert where == f"delinkcious-{environment}", (obj["kind"], obj["metadata"]["name"])


def _component_file(overlay: Path) -> Path:
    """The kustomization that lists an overlay's components."""
    platform = overlay / "platform" / "kustomization.yaml"
    return platform if platform.exists() else overlay / "kustomization.yaml"


def variants(overlay: Path) -> list[tuple[str, ...]]:
    listed = [
        Path(entry).name
        for entry in yaml.safe_load(_component_file(overlay).read_text())["components"]
    ]
    optional = [name for name in listed if name in OPTIONAL]
    backend = next(name for name in listed if name in BACKENDS)
    other = BACKENDS[1 - BACKENDS.index(backend)]
    choices = []
    for size in range(len(optional) + 1):
        for kept in itertools.combinations(optional, size):
            for backends in (backend, other):
                choices.append((backends, *kept))
    return choices


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_component_combination_renders(environment: str, deploy_copy: Path) -> None:
    overlay = deploy_copy / "k8s" / "overlays" / environment
    listing = _component_file(overlay)
    original = listing.read_text()
    prefix = next(
        entry.rsplit("/", 1)[0]
        for entry in yaml.safe_load(original)["components"]
        if "/" in entry and "components" in entry
    )
    combinations = variants(overlay)
    assert len(combinations) >= 4
    try:
        for chosen in combinations:
            document = yaml.safe_load(original)
            document["components"] = [f"{prefix}/{name}" for name in chosen] + [
                entry for entry in document["components"] if "components/" not in entry
            ]
            listing.write_text(yaml.safe_dump(document))
            objects = kustomize(overlay)
            assert set(ours(objects)) == set(KUBE_NAMES), chosen
            in_namespace(objects, environment)
            kinds = {obj["kind"] for obj in objects}
            assert ("NetworkPolicy" in kinds) == ("network-policies" in chosen), chosen
            assert ("ServiceMonitor" in kinds) == ("observability" in chosen), chosen
            assert ("StatefulSet" in kinds) == ("in-cluster-backends" in chosen), chosen
    finally:
        listing.write_text(original)


def test_each_service_directory_is_the_overlay_cut_to_that_service(
    deploy_copy: Path, rendered: dict[str, list[Obj]]
) -> None:
    """Argo CD deploys each directory of staging and production as its own Application;
    together they must be exactly what `kubectl apply -k` of the overlay gives."""
    for environment in ("staging", "production"):
        overlay = deploy_copy / "k8s" / "overlays" / environment
        parts = [
            obj
            for directory in sorted(overlay.iterdir())
            if directory.name not in ("env", "images") and directory.is_dir()
            for obj in kustomize(directory)
        ]
        key = lambda obj: (obj["kind"], obj["metadata"]["name"])  # noqa: E731
        assert sorted(parts, key=key) == sorted(rendered[environment], key=key)


def test_environments_differ_where_they_should(rendered: dict[str, list[Obj]]) -> None:
    namespaces = {
        env: {o["metadata"]["name"] for o in of_kind(rendered[env], "Namespace")}
        for env in ENVIRONMENTS
    }
    assert namespaces == {env: {f"delinkcious-{env}"} for env in ENVIRONMENTS}
    for environment in ENVIRONMENTS:
        in_namespace(rendered[environment], environment)
    autoscalers = {
        env: {
            (h["spec"]["minReplicas"], h["spec"]["maxReplicas"])
            for h in of_kind(rendered[env], "HorizontalPodAutoscaler")
        }
        for env in ENVIRONMENTS
    }
    assert autoscalers == {"dev": {(1, 1)}, "staging": {(1, 5)}, "production": {(2, 10)}}
    assert not of_kind(rendered["production"], "StatefulSet")  # managed backends outside
    assert {
        s["spec"]["type"]
        for s in of_kind(rendered["production"], "Service")
        if s["metadata"]["name"] in ("postgres", "redis", "nats")
    } == {"ExternalName"}


def test_the_derived_files_are_up_to_date() -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "generate-manifests"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_prometheus_rule_is_the_rule_set_promtool_tests(tmp_path: Path) -> None:
    """The cluster's PrometheusRule, unwrapped, passes the same promtool unit tests."""
    observability = ROOT / "deploy" / "observability"
    rule = yaml.safe_load((observability / "kubernetes" / "prometheusrule.yaml").read_text())
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "delinkcious.rules.yml").write_text(
        yaml.safe_dump({"groups": rule["spec"]["groups"]})
    )
    shutil.copytree(observability / "tests", tmp_path / "tests")
    tests = sorted((tmp_path / "tests").glob("*.yml"))
    done = subprocess.run(
        ["promtool", "test", "rules", *map(str, tests)],
        cwd=tmp_path / "tests",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
