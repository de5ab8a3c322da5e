"""``delinkcious up --processes``: every service its own process, as in production.

The backends are those named in the environment, defaulting to the local PostgreSQL
(one database per service), Redis and NATS. Internal tokens are made up per run unless
``DELINKCIOUS_INTERNAL_TOKENS`` is set; the data directory holds the shared page-token key,
the admin token (``admin-token``) and the route table (``routes.yaml``) every process
reads: the replicas of each service (``--replicas links=3``) and a canary pool
(``--canary links=0.2.0``, the same code announcing another version) whose weight you
raise by editing the file while everything runs.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click
import yaml

from delinkcious import __version__
from delinkcious.gateway.admin import ADMIN
from delinkcious.platform.config import Settings
from delinkcious.platform.supervisor import ProcessSpec, supervise
from delinkcious.registry import NAMES, SERVICES

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOCAL_NATS = "nats://127.0.0.1:4222"
ROUTES_FILE = "routes.yaml"
ADMIN_TOKEN_FILE = "admin-token"


def ports(gateway_port: int) -> dict[str, int]:
    """The gateway on the given port, the first replica of each service on the next ones."""
    return {service: gateway_port + index for index, service in enumerate(NAMES)}


@dataclass(frozen=True)
class Replica:
    service: str
    name: str  # its tag in the interleaved output: links, links-2, links-canary
    port: int
    pool: str = "stable"
    version: str | None = None  # announced instead of the package's (a canary's)


def replicas(
    gateway_port: int, counts: Mapping[str, int], canaries: Mapping[str, str]
) -> list[Replica]:
    """Every process to run: each service's first replica on ``ports``, then the others
    and the canaries on the ports after those."""
    first = ports(gateway_port)
    chosen = [Replica(service, service, port) for service, port in first.items()]
    port = gateway_port + len(first)
    for service in NAMES:
        for n in range(2, counts.get(service, 1) + 1):
            chosen.append(Replica(service, f"{service}-{n}", port))
            port += 1
        if service in canaries:
            chosen.append(Replica(service, f"{service}-canary", port, "canary", canaries[service]))
            port += 1
    return chosen


def route_table(host: str, processes: list[Replica]) -> dict[str, object]:
    """Each service's replicas in their pools; a canary starts at weight 0."""
    pools: dict[str, dict[str, list[str]]] = {}
    for replica in processes:
        if replica.service != "gateway":  # nothing calls the gateway
            pool = pools.setdefault(replica.service, {"stable": []})
            pool.setdefault(replica.pool, []).append(f"http://{host}:{replica.port}")
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


def run_processes(
    settings: Settings,
    host: str,
    gateway_port: int,
    counts: Mapping[str, int] | None = None,
    canaries: Mapping[str, str] | None = None,
) -> int:
    env = child_environment(settings, host, gateway_port)
    processes = replicas(gateway_port, counts or {}, canaries or {})
    routes = settings.data_dir.resolve() / ROUTES_FILE
    routes.write_text(
        f"# Written by `delinkcious up --processes` at its start; edit it while it runs:\n"
        f"# every process reloads it within a second. The table in force:\n"
        f'#   curl -H "Authorization: Bearer $(cat {settings.data_dir / ADMIN_TOKEN_FILE})" '
        f"http://{host}:{gateway_port}/admin/routes\n"
        + yaml.safe_dump(route_table(host, processes), sort_keys=False)
    )
    env.setdefault("DELINKCIOUS_ROUTES_FILE", str(routes))
    specs = [
        ProcessSpec(
            name=replica.name,
            argv=[
                sys.executable,
                "-m",
                "delinkcious.cli.main",
                "serve",
                replica.service,
                "--host",
                host,
                "--port",
                str(replica.port),
            ],
            env={**env, "DELINKCIOUS_VERSION": replica.version} if replica.version else env,
            ready_url=f"http://{host}:{replica.port}/healthz",
        )
        for replica in processes
    ]

    def ready() -> None:
        click.echo(
            f"Delinkcious {__version__} is running at http://{host}:{gateway_port} as "
            f"{len(specs)} processes (API docs at /docs; route table {routes}). "
            "Press Ctrl-C to stop."
        )

    return asyncio.run(supervise(specs, on_ready=ready))
