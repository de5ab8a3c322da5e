"""The ``delinkcious`` command: run it embedded (``up``), per service (``serve``), check it."""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from delinkcious import __version__
from delinkcious.cli.release import release
from delinkcious.cli.rollout import rollout
from delinkcious.cli.serving import listen, run, serve
from delinkcious.cli.smoke import smoke
from delinkcious.platform.config import Settings
from delinkcious.platform.startup import DependencyUnavailable
from delinkcious.registry import NAMES, SERVICES, ConfigurationError

DATABASE_SERVICES = tuple(service.name for service in SERVICES if service.database)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; a bad value is a one-line error naming the variable."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "DELINKCIOUS_" + "_".join(str(part) for part in error["loc"]).upper()
        raise click.ClickException(f"configuration error: {name}: {error['msg']}") from None


def observe(service: str, settings: Settings, shape: str) -> None:
    """Logs and traces of this process, from the settings and the standard OTEL_* variables."""
    from delinkcious.platform.logs import setup_logging
    from delinkcious.platform.tracing import (
        TracingConfigurationError,
        default_exporter,
        setup_tracing,
    )

    try:
        setup_logging(service, settings.log_level, settings.log_format, version=settings.version)
        setup_tracing(service, default_exporter(shape), version=settings.version)
    except (ValueError, TracingConfigurationError) as exc:
        raise click.ClickException(f"configuration error: {exc}") from None


def _run_or_explain(coroutine: object) -> None:
    """Run; a dependency that never came up is a one-line error and exit code 1."""
    from delinkcious.platform.tracing import shutdown_tracing

    try:
        run(coroutine)
    except DependencyUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except ConfigurationError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None
    finally:
        shutdown_tracing()


@click.group()
@click.version_option(__version__, prog_name="delinkcious")
def main() -> None:
    """Delinkcious: social bookmarking as microservices."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the SQLite files live (default ./.delinkcious, or $DELINKCIOUS_DATA_DIR).",
)
@click.option(
    "--processes",
    is_flag=True,
    help="Run each service as its own process, on PostgreSQL, Redis and NATS.",
)
@click.option(
    "--replicas",
    "replica_counts",
    multiple=True,
    metavar="SERVICE=N",
    callback=lambda _ctx, _param, values: _pairs(values, "N", int),
    help="With --processes: run N replicas of SERVICE behind the traffic shaper.",
)
@click.option(
    "--canary",
    "canaries",
    multiple=True,
    metavar="SERVICE=VERSION",
    callback=lambda _ctx, _param, values: _pairs(values, "VERSION", str),
    help="With --processes: a canary replica of SERVICE announcing VERSION (weight 0).",
)
@click.option(
    "--prometheus",
    "prometheus_port",
    type=click.IntRange(1, 65535),
    default=None,
    is_flag=False,
    flag_value=9090,
    metavar="[PORT]",
    help="With --processes: a Prometheus scraping every process (default port 9090).",
)
def up(
    host: str,
    port: int,
    data_dir: Path | None,
    processes: bool,
    replica_counts: dict[str, int],
    canaries: dict[str, str],
    prometheus_port: int | None,
) -> None:
    """Run all of Delinkcious: in this one process (default), or one process per service."""
    settings = load_settings(data_dir=data_dir)
    if (replica_counts or canaries or prometheus_port) and not processes:
        raise click.UsageError("--replicas, --canary and --prometheus need --processes")
    if processes:
        from delinkcious.cli.processes import run_processes

        sys.exit(run_processes(settings, host, port, replica_counts, canaries, prometheus_port))
    from delinkcious.embedded import embedded_app

    observe("delinkcious", settings, "embedded")

    def ready(url: str) -> None:
        click.echo(
            f"Delinkcious {__version__} is running at {url} "
            f"(API docs at /docs, data in {settings.data_dir}). Press Ctrl-C to stop."
        )

    _run_or_explain(serve(embedded_app(settings), listen(host, port), ready))
    click.echo("Delinkcious stopped.", err=True)


def _pairs(values: tuple[str, ...], what: str, kind: type[Any]) -> dict[str, Any]:
    """``("links=3", ...)`` → ``{"links": 3}``: services the gateway calls only."""
    pairs: dict[str, Any] = {}
    for value in values:
        name, sep, raw = value.partition("=")
        if not sep or name not in NAMES or name == "gateway":
            choices = ", ".join(n for n in NAMES if n != "gateway")
            raise click.BadParameter(
                f"{value!r}: expected SERVICE={what}, SERVICE one of {choices}"
            )
        try:
            pairs[name] = kind(raw)
        except ValueError:
            raise click.BadParameter(f"{value!r}: {what} must be a {kind.__name__}") from None
        if kind is int and not 1 <= pairs[name] <= 9:
            raise click.BadParameter(f"{value!r}: from 1 to 9 replicas")
        if kind is str and not raw.strip():
            raise click.BadParameter(f"{value!r}: an empty version")
    return pairs


@main.command(name="serve")
@click.argument("service")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--reload",
    is_flag=True,
    help="Restart whenever the Python source changes (the inner loop; never in production).",
)
def serve_command(service: str, host: str, port: int, reload: bool) -> None:
    """Run one SERVICE (gateway, links, users, social_graph, news, link_checker)."""
    if reload:
        sys.exit(_serve_reloading(service, host, port))
    from delinkcious.distributed import service_app
    from delinkcious.registry import check_configuration

    settings = load_settings()
    try:
        check_configuration(service, settings)
    except ConfigurationError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None
    observe(service, settings, "processes")

    def ready(url: str) -> None:
        # A log line like every other (JSON in a container), not a bare print.
        logging.getLogger("delinkcious.serve").info("%s is serving at %s", service, url)

    _run_or_explain(serve(service_app(service, settings), listen(host, port), ready))


def _serve_reloading(service: str, host: str, port: int) -> int:
    """``serve`` in a child process, started again each time a source file changes."""
    import shlex

    from watchfiles import PythonFilter, run_process

    import delinkcious

    command = [sys.executable, "-m", "delinkcious.cli.main", "serve", service]
    return run_process(
        Path(delinkcious.__file__).parent,
        target=shlex.join([*command, "--host", host, "--port", str(port)]),
        target_type="command",
        watch_filter=PythonFilter(),
        callback=lambda changes: click.echo(f"{len(changes)} source file(s) changed: restarting"),
    )


@main.command()
@click.argument("service", type=click.Choice(DATABASE_SERVICES))
def migrate(service: str) -> None:
    """Create SERVICE's database if missing and bring its schema to the newest migration."""
    from delinkcious.wiring import Assembly, migrated_engine

    settings = load_settings()
    if getattr(settings, f"{service}_redis_url", None) is not None:
        click.echo(f"{service}: its data lives in Redis (DELINKCIOUS_{service.upper()}_REDIS_URL)")
        return

    async def apply() -> None:
        async with AsyncExitStack() as stack:
            await migrated_engine(Assembly(settings, stack), service)

    try:
        asyncio.run(apply())
    except DependencyUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{service}: schema is up to date ({settings.database_url(service).split(':')[0]})")


main.add_command(smoke)
main.add_command(release)
main.add_command(rollout)

if __name__ == "__main__":
    sys.exit(main())
