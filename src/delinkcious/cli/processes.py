"""``delinkcious up --processes``: every service its own process, as in production.

The backends are those named in the environment, defaulting to the local PostgreSQL
(one database per service), Redis and NATS. Internal tokens are made up per run unless
``DELINKCIOUS_INTERNAL_TOKENS`` is set. The data directory holds what the parts share:

- ``processes.yaml``: the processes to keep running (``--replicas links=3`` adds
  replicas, ``--canary links=0.2.0`` one that announces another version); the supervisor
  follows edits to it, and ``delinkcious rollout`` makes them;
- ``routes.yaml``: the traffic shaper's table every process reads (a canary starts at
  weight 0; raise it by editing the file while everything runs);
- ``admin-token`` (for ``GET /admin/routes``) and the shared page-token key;
- ``prometheus/`` with ``--prometheus``: a Prometheus scraping every process, whose
  targets follow ``processes.yaml`` (what rollout analyses query).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import click
import yaml

from delinkcious import __version__
from delinkcious.gateway.admin import ADMIN
from delinkcious.local import processes as local
from delinkcious.local import prometheus
from delinkcious.platform.config import Settings
from delinkcious.platform.supervisor import ProcessSpec, supervise
from delinkcious.registry import NAMES, SERVICES

log = logging.getLogger("delinkcious.up")

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOCAL_NATS = "nats://127.0.0.1:4222"
ROUTES_FILE = "routes.yaml"
ADMIN_TOKEN_FILE = "admin-token"


def ports(gateway_port: int) -> dict[str, int]:
    """The gateway on the given port, the first replica of each service on the next ones."""
    return {service: gateway_port + index for index, service in enumerate(NAMES)}


def initial(
    gateway_port: int, counts: Mapping[str, int], canaries: Mapping[str, str]
) -> tuple[list[local.Process], set[str]]:
    """Every process to start with, and the names of the canaries among them: each
    service's first replica on ``ports``, the others and the canaries on the next ports."""
    first = ports(gateway_port)
    chosen = [
        local.Process(name=service, service=service, port=port) for service, port in first.items()
    ]
    canary_names: set[str] = set()
    port = gateway_port + len(first)
    for service in NAMES:
        for n in range(2, counts.get(service, 1) + 1):
            chosen.append(local.Process(name=f"{service}-{n}", service=service, port=port))
            port += 1
        if service in canaries:
            name = f"{service}-canary"
            chosen.append(
                local.Process(name=name, service=service, port=port, version=canaries[service])
            )
            canary_names.add(name)
            port += 1
    return chosen, canary_names


def route_table(
    host: str, processes: Sequence[local.Process], canaries: set[str]
) -> dict[str, object]:
    """Each service's replicas in their pools; a canary starts at weight 0."""
    pools: dict[str, dict[str, list[str]]] = {}
    for process in processes:
        if process.service != "gateway":  # nothing calls the gateway
            pool = pools.setdefault(process.service, {"stable": []})
            name = "canary" if process.name in canaries else "stable"
            pool.setdefault(name, []).append(f"http://{host}:{process.port}")
    routes = {
        service: {**pool, **({"canary_weight": 0} if "canary" in pool else {})}
        for service, pool in pools.items()
    }
    return {"balance": "least_outstanding", "routes": routes}


def child_environment(settings: Settings, host: str, gateway_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the interleaved log as they are written
    env["DELINKCIOUS_DATA_DIR"] = str(settings.data_dir.resolve())
    port = ports(gateway_port)
    for service in SERVICES:
        if service.redis:
            env.setdefault(f"{service.env_prefix}_REDIS_URL", LOCAL_REDIS)
        elif service.database:
            env.setdefault(
                f"{service.env_prefix}_DATABASE_URL", f"{LOCAL_POSTGRES}/delinkcious_{service.name}"
            )
        if service.protocol is not None:
            env.setdefault(f"{service.env_prefix}_URL", f"http://{host}:{port[service.name]}")
    env.setdefault("DELINKCIOUS_NATS_URL", LOCAL_NATS)
    if "DELINKCIOUS_INTERNAL_TOKENS" not in env:
        admin = _private(settings.data_dir / ADMIN_TOKEN_FILE, secrets.token_urlsafe(24))
        env["DELINKCIOUS_INTERNAL_TOKENS"] = ",".join(
            [*(f"{service}={secrets.token_urlsafe(24)}" for service in NAMES), f"{ADMIN}={admin}"]
        )
    # Every replica of a service that signs page tokens needs the same key: the one kept
    # in the data directory, made here before the processes that share it start.
    env.setdefault("DELINKCIOUS_SECRET_KEY", settings.page_token_secret().decode())
    return env


def _private(path: Path, text: str) -> str:
    """Write ``text`` readable by this user only; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)
    return text


class _Desired:
    """What ``processes.yaml`` asks for, read again when it changes; None when unchanged
    or unusable (said once), so the supervisor keeps what runs."""

    def __init__(self, path: Path, host: str, env: Mapping[str, str], scrape: Path | None):
        self._path, self._host, self._env, self._scrape = path, host, env, scrape
        self._seen: bytes | None = None
        self.extra: list[ProcessSpec] = []  # not in the file: Prometheus

    def specs(self, processes: Sequence[local.Process]) -> list[ProcessSpec]:
        if self._scrape is not None:
            prometheus.write_targets(self._scrape, self._host, processes)
        return [local.spec(p, self._host, self._env) for p in processes] + self.extra

    def __call__(self) -> list[ProcessSpec] | None:
        try:
            content = self._path.read_bytes()
        except OSError:
            content = b""
        if content == self._seen:
            return None
        self._seen = content
        try:
            processes = local.read(self._path)
        except local.ProcessesError as exc:
            log.error("%s; keeping the processes that run", exc)
            return None
        return self.specs(processes)


def run_processes(
    settings: Settings,
    host: str,
    gateway_port: int,
    counts: Mapping[str, int] | None = None,
    canaries: Mapping[str, str] | None = None,
    prometheus_port: int | None = None,
) -> int:
    env = child_environment(settings, host, gateway_port)
    rollouts = settings.data_dir.resolve() / "rollouts"
    if rollouts.exists():  # the history of another run: its processes are gone
        shutil.rmtree(rollouts)
    data = settings.data_dir.resolve()
    processes, canary_names = initial(gateway_port, counts or {}, canaries or {})
    admin = f'curl -H "Authorization: Bearer $(cat {data / ADMIN_TOKEN_FILE})"'
    routes = data / ROUTES_FILE
    routes.write_text(
        "# Written by `delinkcious up --processes` at its start; edit it while it runs:\n"
        "# every process reloads it within a second. The table in force:\n"
        f"#   {admin} http://{host}:{gateway_port}/admin/routes\n"
        + yaml.safe_dump(route_table(host, processes, canary_names), sort_keys=False)
    )
    env.setdefault("DELINKCIOUS_ROUTES_FILE", str(routes))
    listing = data / local.FILE
    local.write(
        listing,
        processes,
        host,
        header="# The processes `delinkcious up --processes` keeps running; it follows edits\n"
        "# (and `delinkcious rollout` makes them). Settings and secrets are not here.\n",
    )
    scrape = None
    if prometheus_port is not None:
        (data / "prometheus").mkdir(parents=True, exist_ok=True)
        (data / "prometheus" / "url").write_text(f"http://{host}:{prometheus_port}")
        if shutil.which("prometheus") is None:
            raise click.ClickException(
                "--prometheus needs the prometheus binary (Debian: apt-get install prometheus)"
            )
        scrape = data / "prometheus"
    desired = _Desired(listing, host, env, scrape)
    if scrape is not None and prometheus_port is not None:
        desired.extra = [prometheus.spec(scrape, host, prometheus_port)]
    specs = desired()
    assert specs is not None  # the file was just written

    def ready() -> None:
        watching = f"; Prometheus at http://{host}:{prometheus_port}" if prometheus_port else ""
        click.echo(
            f"Delinkcious {__version__} is running at http://{host}:{gateway_port} as "
            f"{len(specs)} processes (API docs at /docs; {listing.name} and {routes.name} in "
            f"{data}{watching}). Press Ctrl-C to stop."
        )

    return asyncio.run(supervise(specs, on_ready=ready, desired=desired))
