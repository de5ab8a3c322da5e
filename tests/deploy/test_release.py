"""`delinkcious release`: an environment's secrets made once, and promotion by command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from delinkcious.registry import SERVICES, callers
from tests.deploy.manifests import BIN, DEPLOY, KUBE_NAMES, kustomize, ours


def release(*args: str, deploy_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "delinkcious"), "release", *args, "--deploy-dir", str(deploy_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(DEPLOY, tmp_path / "deploy", ignore=shutil.ignore_patterns("*.env"))
    return tmp_path / "deploy" / "k8s"


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_secrets_share_each_token_exactly_along_the_call_graph(tree: Path) -> None:
    done = release("secrets", "staging", deploy_dir=tree)
    assert done.returncode == 0, done.stderr
    directory = tree / "overlays" / "staging" / "secrets"
    env = {path.stem: read_env(path) for path in directory.glob("*.env")}
    assert set(env) == {*KUBE_NAMES.values(), "backends"}
    tokens = {
        name: dict(
            entry.split("=", 1)
            for entry in env[KUBE_NAMES[name]]["DELINKCIOUS_INTERNAL_TOKENS"].split(",")
        )
        for name in KUBE_NAMES
    }
    for current in SERVICES:
        # Its own token (to call others) and its callers' (to let them in); nothing more
        # but, for the gateway, the token of its admin endpoint.
        admin = {"admin"} if current.name == "gateway" else set()
        assert set(tokens[current.name]) == {current.name, *callers(current.name), *admin}
        for caller in callers(current.name):
            assert tokens[current.name][caller] == tokens[caller][caller]
    keys = {env[KUBE_NAMES[s.name]]["DELINKCIOUS_SECRET_KEY"] for s in SERVICES if s.page_tokens}
    assert len(keys) == 1
    everything = [value for values in env.values() for value in values.values()]
    assert all(len(value) >= 40 for value in everything)
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in directory.glob("*.env"))


def test_secrets_are_never_replaced_by_accident(tree: Path) -> None:
    assert release("secrets", "dev", deploy_dir=tree).returncode == 0
    links = tree / "overlays" / "dev" / "secrets" / "links.env"
    before = links.read_text()
    again = release("secrets", "dev", deploy_dir=tree)
    assert again.returncode == 1
    assert "dev has secrets already" in again.stderr and "--force" in again.stderr
    assert links.read_text() == before
    assert release("secrets", "dev", "--force", deploy_dir=tree).returncode == 0
    assert links.read_text() != before


def test_production_gets_no_in_cluster_database_password(tree: Path) -> None:
    assert release("secrets", "production", deploy_dir=tree).returncode == 0
    made = {p.name for p in (tree / "overlays" / "production" / "secrets").glob("*.env")}
    assert "backends.env" not in made and "links.env" in made


def test_an_unknown_environment_is_named_with_the_known_ones(tree: Path) -> None:
    done = release("secrets", "qa", deploy_dir=tree)
    assert done.returncode == 1
    assert "no environment 'qa'" in done.stderr and "dev, production, staging" in done.stderr


def images(tree: Path, environment: str) -> dict[str, str]:
    path = tree / "overlays" / environment / "images" / "kustomization.yaml"
    return {image["name"]: image["newTag"] for image in yaml.safe_load(path.read_text())["images"]}


def set_tag(tree: Path, environment: str, service: str, tag: str) -> None:
    path = tree / "overlays" / environment / "images" / "kustomization.yaml"
    document = yaml.safe_load(path.read_text())
    for image in document["images"]:
        if image["name"] == f"delinkcious-{service}":
            image["newTag"] = tag
    path.write_text(yaml.safe_dump(document))


def test_promote_copies_the_tags_staging_runs_into_production(tree: Path) -> None:
    set_tag(tree, "staging", "links", "0.2.0")
    set_tag(tree, "staging", "news", "0.2.0")
    path = tree / "overlays" / "production" / "images" / "kustomization.yaml"
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    done = release(
        "promote", "--from", "staging", "--to", "production", "--service", "links", deploy_dir=tree
    )
    assert done.returncode == 0, done.stderr
    assert "links: 0.1.0 -> 0.2.0" in done.stdout and "review and commit" in done.stdout
    after = images(tree, "production")
    assert after["delinkcious-links"] == "0.2.0"
    assert after["delinkcious-news"] == "0.1.0"  # only what was asked
    assert [line for line in path.read_text().splitlines() if line.startswith("#")] == header
    rendered = kustomize(tree / "overlays" / "production" / "links")
    (deployment,) = ours(rendered).values()
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":0.2.0")

    staging = tree / "overlays" / "staging" / "images" / "kustomization.yaml"
    document = yaml.safe_load(staging.read_text())
    document["images"][0]["digest"] = "sha256:" + "ab" * 32  # the gateway, pinned harder
    staging.write_text(yaml.safe_dump(document))
    done = release("promote", "--from", "staging", "--to", "production", deploy_dir=tree)
    assert "news: 0.1.0 -> 0.2.0" in done.stdout
    assert f"gateway: 0.1.0 -> 0.1.0@sha256:{'ab' * 32}" in done.stdout
    assert images(tree, "production") == images(tree, "staging")
    again = release("promote", "--from", "staging", "--to", "production", deploy_dir=tree)
    assert again.returncode == 0 and "already runs the images of staging" in again.stdout


def test_promote_refuses_an_unknown_service(tree: Path) -> None:
    done = release(
        "promote",
        "--from",
        "staging",
        "--to",
        "production",
        "--service",
        "billing",
        deploy_dir=tree,
    )
    assert done.returncode == 2 and "'billing' is not one of 'gateway'" in done.stderr
    assert "Traceback" not in done.stderr
