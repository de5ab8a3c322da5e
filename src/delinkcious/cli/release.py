"""``delinkcious release``: the environments under ``deploy/k8s/overlays``, changed by command.

``secrets ENV`` writes an environment's Secrets once, into the git-ignored env files its
``secrets/kustomization.yaml`` names, each internal token shared exactly by the services
the registry says call each other. ``promote --from staging --to production`` copies image
tags from one overlay to the next: a change to review and commit, never a hand edit.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import yaml

from delinkcious.gateway.admin import ADMIN
from delinkcious.registry import NAMES, SERVICES, Service, callers, service

DEFAULT_DEPLOY_DIR = Path("deploy/k8s")
BACKENDS = "backends"  # the in-cluster PostgreSQL's superuser: not a service's Secret


def kube_name(name: str) -> str:
    """A service's name in Kubernetes, where '_' is not allowed (social_graph: social-graph)."""
    return name.replace("_", "-")


def _random() -> str:
    return secrets.token_urlsafe(32)


def secret_values(tokens: dict[str, str], key: str) -> dict[str, dict[str, str]]:
    """Each service's Secret: its own token and its callers' (nothing more), its data
    store's password, and the page-token key where it signs page tokens."""
    values: dict[str, dict[str, str]] = {}
    for current in SERVICES:
        accepted = [current.name, *callers(current.name)]
        if current.protocol is None:  # the gateway: its admin endpoint's token too
            accepted.append(ADMIN)
        env = {
            "DELINKCIOUS_INTERNAL_TOKENS": ",".join(f"{n}={tokens[n]}" for n in accepted),
        }
        if current.redis:
            env[f"{current.env_prefix}_REDIS_PASSWORD"] = _random()
        elif current.database:
            env[f"{current.env_prefix}_DATABASE_PASSWORD"] = _random()
        if current.page_tokens:
            env["DELINKCIOUS_SECRET_KEY"] = key
        values[kube_name(current.name)] = env
    values[BACKENDS] = {"POSTGRES_PASSWORD": _random()}
    return values


def _overlay(deploy_dir: Path, environment: str) -> Path:
    overlay = deploy_dir / "overlays" / environment
    if not overlay.is_dir():
        known = sorted(p.name for p in (deploy_dir / "overlays").glob("*") if p.is_dir())
        raise click.ClickException(
            f"no environment {environment!r} in {deploy_dir / 'overlays'} "
            f"(there are: {', '.join(known) or 'none'})"
        )
    return overlay


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None


def _env_files(kustomization: Path) -> list[str]:
    generators = _load(kustomization).get("secretGenerator") or []
    return [name for generator in generators for name in generator.get("envs", [])]


@click.group()
def release() -> None:
    """Change the Kubernetes environments under deploy/k8s/overlays."""


deploy_dir_option = click.option(
    "--deploy-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DEPLOY_DIR,
    show_default=True,
    help="The kustomize tree (base, components, overlays).",
)


@release.command(name="secrets")
@click.argument("environment")
@deploy_dir_option
@click.option(
    "--force",
    is_flag=True,
    help="Replace every existing secret at once; see the README's rotation steps.",
)
def make_secrets(environment: str, deploy_dir: Path, force: bool) -> None:
    """Write ENVIRONMENT's Secrets into git-ignored env files, with fresh random values."""
    directory = _overlay(deploy_dir, environment) / "secrets"
    wanted = _env_files(directory / "kustomization.yaml")
    tokens = {name: _random() for name in (*NAMES, ADMIN)}
    values = secret_values(tokens, _random())
    unknown = [name for name in wanted if name.removesuffix(".env") not in values]
    if unknown:
        raise click.ClickException(f"{directory}: no values known for {', '.join(unknown)}")
    existing = [name for name in wanted if (directory / name).exists()]
    if existing and not force:
        raise click.ClickException(
            f"{environment} has secrets already ({', '.join(existing)}); --force replaces "
            "all of them at once (tokens are shared between files, so never some of them)"
        )
    for name in wanted:
        _write_private(directory / name, values[name.removesuffix(".env")].items())
    click.echo(f"{environment}: wrote {len(wanted)} secret files in {directory} (git-ignored)")
    if existing:
        click.echo(
            "replaced: apply them, set the new database passwords on the roles, then restart "
            "Redis and every service (README: Rotating secrets)"
        )


def _write_private(path: Path, pairs: Iterable[tuple[str, str]]) -> None:
    """Readable by this user only, from the moment it exists."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.writelines(f"{key}={value}\n" for key, value in pairs)


def _images_file(deploy_dir: Path, environment: str) -> Path:
    return _overlay(deploy_dir, environment) / "images" / "kustomization.yaml"


def _images(path: Path) -> dict[str, dict[str, Any]]:
    return {image["name"]: image for image in _load(path).get("images") or []}


def _pin(image: dict[str, Any]) -> str:
    """How an image entry pins its version: tag, digest, or both."""
    return "@".join(str(image[key]) for key in ("newTag", "digest") if key in image) or "?"


@release.command()
@click.option("--from", "source", required=True, help="The environment whose images to take.")
@click.option("--to", "target", required=True, help="The environment to change.")
@click.option(
    "--service",
    "names",
    multiple=True,
    type=click.Choice([current.name for current in SERVICES]),
    help="Only this service (repeatable); default every service.",
)
@deploy_dir_option
def promote(source: str, target: str, names: tuple[str, ...], deploy_dir: Path) -> None:
    """Give TARGET the image tags SOURCE runs; review the change, commit, then sync."""
    chosen: list[Service] = [service(name) for name in names] or list(SERVICES)
    source_images = _images(_images_file(deploy_dir, source))
    path = _images_file(deploy_dir, target)
    document = _load(path)
    target_images = {image["name"]: image for image in document.get("images") or []}
    changes = []
    for current in chosen:
        name = f"delinkcious-{kube_name(current.name)}"
        if name not in source_images or name not in target_images:
            raise click.ClickException(f"{name} is not in the images of both {source} and {target}")
        old, new = _pin(target_images[name]), _pin(source_images[name])
        if old != new:
            # The tag and the digest travel together: what staging tested is what
            # production runs. The registry (newName) stays the target's own.
            for key in ("newTag", "digest"):
                if key in source_images[name]:
                    target_images[name][key] = source_images[name][key]
                else:
                    target_images[name].pop(key, None)
            changes.append(f"{current.name}: {old} -> {new}")
    if not changes:
        click.echo(f"{target} already runs the images of {source}")
        return
    header = "".join(line for line in path.read_text().splitlines(True) if line.startswith("#"))
    path.write_text(header + yaml.safe_dump(document, sort_keys=False))
    click.echo(f"{target}: " + "; ".join(changes))
    click.echo(f"review and commit {path}; then sync {target} in Argo CD")
