"""The manifests as a cluster would get them: a copy of deploy/ with fresh secrets, rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.manifests import ENVIRONMENTS, Obj, copy_with_secrets, kustomize


@pytest.fixture(scope="session")
def deploy_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_with_secrets(tmp_path_factory.mktemp("manifests"))


@pytest.fixture(scope="session")
def rendered(deploy_copy: Path) -> dict[str, list[Obj]]:
    """Each environment whole (`kubectl apply -k deploy/k8s/overlays/ENV`), and Argo CD's
    objects and the logging add-on."""
    return {
        **{env: kustomize(deploy_copy / "k8s" / "overlays" / env) for env in ENVIRONMENTS},
        "argocd": kustomize(deploy_copy / "argocd"),
        "logging": kustomize(deploy_copy / "k8s" / "addons" / "logging"),
    }
