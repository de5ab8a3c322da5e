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
from delinkcious.distributed import SERVICES
from delinkcious.platform.config import Settings
from delinkcious.platform.supervisor import ProcessSpec, supervise

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOCAL_NATS = "nats://127.0.0.1:4222"
DATABASES = ("links", "users", "social_graph")


def ports(gateway_port: int) -> dict[str, int]:
    """The gateway on the given port, the internal services on the next ones."""
    return {service: gateway_port + index for index, service in enumerate(SERVICES)}


def child_environment(settings: Settings, host: str, gateway_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the interleaved log as they are written
    env["DELINKCIOUS_DATA_DIR"] = str(settings.data_dir.resolve())
    for service in DATABASES:
        env.setdefault(
            f"DELINKCIOUS_{service.upper()}_DATABASE_URL", f"{LOCAL_POSTGRES}/delinkcious_{service}"
        )
    env.setdefault("DELINKCIOUS_NEWS_REDIS_URL", LOCAL_REDIS)
    env.setdefault("DELINKCIOUS_NATS_URL", LOCAL_NATS)
    for service, port in ports(gateway_port).items():
        if service != "gateway":
            env.setdefault(f"DELINKCIOUS_{service.upper()}_URL", f"http://{host}:{port}")
    env.setdefault(
        "DELINKCIOUS_INTERNAL_TOKENS",
        ",".join(f"{service}={secrets.token_urlsafe(24)}" for service in SERVICES),
    )
    return env


def run_processes(settings: Settings, host: str, gateway_port: int) -> int:
    settings.page_token_secret()  # made once here, before the processes that share it start
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
