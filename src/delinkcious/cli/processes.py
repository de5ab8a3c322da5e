"""``delinkcious up --processes``: every service its own process, as in production.

The backends are those named in the environment, defaulting to the local PostgreSQL
(one database per service), Redis and NATS. Internal tokens are made up per run unless
``DELINKCIOUS_INTERNAL_TOKENS`` is set; the data directory holds the shared page-token key.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys

import click

from delinkcious import __version__
from delinkcious.platform.config import Settings
from delinkcious.platform.supervisor import ProcessSpec, supervise
from delinkcious.registry import NAMES, SERVICES

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOCAL_NATS = "nats://127.0.0.1:4222"


def ports(gateway_port: int) -> dict[str, int]:
    """The gateway on the given port, the internal services on the next ones."""
    return {service: gateway_port + index for index, service in enumerate(NAMES)}


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
    env.setdefault(
        "DELINKCIOUS_INTERNAL_TOKENS",
        ",".join(f"{service}={secrets.token_urlsafe(24)}" for service in NAMES),
    )
    # Every replica of a service that signs page tokens needs the same key: the one kept
    # in the data directory, made here before the processes that share it start.
    env.setdefault("DELINKCIOUS_SECRET_KEY", settings.page_token_secret().decode())
    return env


def run_processes(settings: Settings, host: str, gateway_port: int) -> int:
    env = child_environment(settings, host, gateway_port)
    specs = [
        ProcessSpec(
            name=service,
            argv=[
                sys.executable,
                "-m",
                "delinkcious.cli.main",
                "serve",
                service,
                "--host",
                host,
                "--port",
                str(port),
            ],
            env=env,
            ready_url=f"http://{host}:{port}/healthz",
        )
        for service, port in ports(gateway_port).items()
    ]

    def ready() -> None:
        click.echo(
            f"Delinkcious {__version__} is running at http://{host}:{gateway_port} as "
            f"{len(specs)} processes (API docs at /docs). Press Ctrl-C to stop."
        )

    return asyncio.run(supervise(specs, on_ready=ready))
