"""Every rendered object passes its schema strictly: core objects the Kubernetes API's own
(kubernetes-validate, offline), custom resources their operators' (the @kubernetes-models
npm packages, through validate_crds.mjs), unknown fields refused by both."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest

from tests.deploy.manifests import Obj

# The oldest Kubernetes we support (native preStop sleep, matchLabelKeys in topology
# spread) and the newest these schemas know: what validates on both runs on all between.
KUBERNETES_VERSIONS = ("1.30", "1.37")
CUSTOM_GROUPS = ("argoproj.io", "monitoring.coreos.com", "autoscaling.k8s.io")
VALIDATOR = Path(__file__).with_name("validate_crds.mjs")


def is_custom(obj: Obj) -> bool:
    return obj["apiVersion"].split("/")[0] in CUSTOM_GROUPS


def core_errors(obj: Obj, version: str) -> str | None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.path)}"
    return None


def custom_verdicts(objects: list[Obj]) -> list[list[str]]:
    """Each object's errors, in order."""
    done = subprocess.run(
        ["node", str(VALIDATOR)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=VALIDATOR.parent,
    )
    assert done.returncode == 0, done.stderr
    return [result["errors"] for result in json.loads(done.stdout)]


def custom_errors(objects: list[Obj]) -> list[str]:
    return [
        f"{obj['kind']} {obj['metadata']['name']}: {error}"
        for obj, errors in zip(objects, custom_verdicts(objects), strict=True)
        for error in errors
    ]


def everything(rendered: dict[str, list[Obj]]) -> list[Obj]:
    return [obj for objects in rendered.values() for obj in objects]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_pass_the_kubernetes_schemas_strictly(
    rendered: dict[str, list[Obj]], version: str
) -> None:
    core = [obj for obj in everything(rendered) if not is_custom(obj)]
    assert len(core) > 100
    errors = [error for obj in core if (error := core_errors(obj, version))]
    assert not errors, "\n".join(errors)


def test_custom_resources_pass_their_operators_schemas(rendered: dict[str, list[Obj]]) -> None:
    custom = [obj for obj in everything(rendered) if is_custom(obj)]
    assert {obj["kind"] for obj in custom} >= {
        "ServiceMonitor",
        "PrometheusRule",
        "VerticalPodAutoscaler",
        "AppProject",
        "ApplicationSet",
        "Application",
    }
    errors = custom_errors(custom)
    assert not errors, "\n".join(errors)


def _deployment(rendered: dict[str, list[Obj]]) -> Obj:
    return next(obj for obj in rendered["staging"] if obj["kind"] == "Deployment")


def test_a_wrong_type_or_an_unknown_field_fails_the_core_check(
    rendered: dict[str, list[Obj]],
) -> None:
    wrong_type = copy.deepcopy(_deployment(rendered))
    wrong_type["spec"]["replicas"] = "two"
    unknown = copy.deepcopy(_deployment(rendered))
    unknown["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    for version in KUBERNETES_VERSIONS:
        assert core_errors(_deployment(rendered), version) is None
        assert "'two' is not of type 'integer'" in (core_errors(wrong_type, version) or "")
        assert "readinesProbe" in (core_errors(unknown, version) or "")


def test_a_wrong_type_or_an_unknown_field_fails_the_custom_check(
    rendered: dict[str, list[Obj]],
) -> None:
    monitor = next(obj for obj in rendered["staging"] if obj["kind"] == "ServiceMonitor")
    wrong_type = copy.deepcopy(monitor)
    wrong_type["spec"]["endpoints"][0]["honorLabels"] = "yes"
    unknown = copy.deepcopy(monitor)
    unknown["spec"]["endpoints"][0]["intervall"] = "15s"
    appset = next(obj for obj in rendered["argocd"] if obj["kind"] == "ApplicationSet")
    misspelt = copy.deepcopy(appset)
    misspelt["spec"]["template"]["spec"]["syncPolicy"]["syncOption"] = []
    valid, typed_wrong, with_unknown, appset_misspelt = custom_verdicts(
        [monitor, wrong_type, unknown, misspelt]
    )
    assert valid == []
    assert "data/spec/endpoints/0/honorLabels must be boolean" in typed_wrong
    assert any('"intervall"\' does not exist' in error for error in with_unknown), with_unknown
    assert any('"syncOption"\' does not exist' in error for error in appset_misspelt)
