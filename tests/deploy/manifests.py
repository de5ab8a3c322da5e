"""Rendering the Kubernetes manifests and finding things in them, for the deploy tests."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from delinkcious.cli.release import kube_name
from delinkcious.registry import SERVICES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ENVIRONMENTS = ("dev", "staging", "production")
# What a Deployment of ours is called in Kubernetes, by the registry's service name.
KUBE_NAMES = {service.name: kube_name(service.name) for service in SERVICES}
BIN = Path(sys.executable).parent

Obj = dict[str, Any]


def kustomize(path: Path) -> list[Obj]:
    """``kubectl kustomize PATH``, as objects; a failure shows kustomize's own message."""
    done = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


def copy_with_secrets(destination: Path) -> Path:
    """A copy of deploy/ with every environment's secrets made by the real command."""
    copy = destination / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("*.env"))
    for environment in ENVIRONMENTS:
        done = subprocess.run(
            [BIN / "delinkcious", "release", "secrets", environment, "--deploy-dir", copy / "k8s"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    return copy


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def workloads(objects: list[Obj]) -> Iterator[Obj]:
    """Everything that runs pods."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            yield obj


def containers(workload: Obj) -> list[Obj]:
    return list(workload["spec"]["template"]["spec"]["containers"])


def ours(objects: list[Obj]) -> dict[str, Obj]:
    """The Deployments of Delinkcious' own services, by registry name."""
    deployments = {obj["metadata"]["name"]: obj for obj in of_kind(objects, "Deployment")}
    return {name: deployments[kube] for name, kube in KUBE_NAMES.items() if kube in deployments}


def data_of(objects: list[Obj], kind: str, name: str) -> dict[str, str]:
    """The data of a rendered ConfigMap (by its name before kustomize's hash suffix, or
    after it) or of a Secret made from an env file."""
    for obj in of_kind(objects, kind):
        if obj["metadata"]["name"] == name:
            if kind == "Secret":
                return {
                    key: base64.b64decode(value).decode()
                    for key, value in (obj.get("data") or {}).items()
                }
            return dict(obj.get("data") or {})
    raise AssertionError(f"no {kind} {name}")


def environment_of(objects: list[Obj], container: Obj) -> dict[str, str]:
    """The environment a container gets: its envFrom ConfigMaps and Secrets, then its env
    (``$(VAR)`` expanded as the kubelet does)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(data_of(objects, "ConfigMap", source["configMapRef"]["name"]))
        else:
            env.update(data_of(objects, "Secret", source["secretRef"]["name"]))
    for item in container.get("env", []):
        if "value" in item:
            value = item["value"]
            for key, known in env.items():
                value = value.replace(f"$({key})", known)
            env[item["name"]] = value
        else:
            ref = item["valueFrom"].get("secretKeyRef") or item["valueFrom"]["configMapKeyRef"]
            kind = "Secret" if "secretKeyRef" in item["valueFrom"] else "ConfigMap"
            env[item["name"]] = data_of(objects, kind, ref["name"])[ref["key"]]
    return env
