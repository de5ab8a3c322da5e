"""``delinkcious rollout``: move one service of ``up --processes`` to a new version.

``start`` runs the rollout in the foreground and prints each step; from another terminal
``status``, ``history``, ``promote`` (end the current pause; ``--full``: straight to 100 %),
``abort`` and ``undo`` act on it, as ``kubectl argo rollouts`` does. Its state is on disk:
if the command that drives it dies, ``resume`` carries on where it stood (so do
``promote``, ``abort`` and ``undo`` when nothing drives it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import httpx

from delinkcious.platform.middleware.faults import parse_duration
from delinkcious.registry import NAMES
from delinkcious.rollout.cluster import ClusterError, LocalCluster
from delinkcious.rollout.controller import (
    ABORT,
    PROMOTE,
    PROMOTE_FULL,
    ROUTED,
    UNDO,
    Controller,
    request,
)
from delinkcious.rollout.state import History, Params, Phase, Release, Rollout, Store, Strategy, now

DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".delinkcious"),
    show_default=True,
    help="The data directory of the `up --processes` to act on.",
)
SERVICE = click.argument("service", type=click.Choice([n for n in NAMES if n != "gateway"]))


def _seconds(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _steps(_ctx: click.Context, _param: click.Parameter, value: str) -> list[int]:
    try:
        steps = [round(float(part) * 100) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r}: percentages like 5,25,50,100") from None
    if not steps or steps != sorted(set(steps)) or not steps[0] > 0 or steps[-1] != 10_000:
        raise click.BadParameter(f"{value!r}: rising percentages ending at 100")
    return steps


def _env(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key.startswith("DELINKCIOUS_"):
            raise click.BadParameter(f"{value!r}: DELINKCIOUS_NAME=value")
        env[key] = setting
    return env


@click.group()
def rollout() -> None:
    """Roll a new version of one service out over `up --processes`."""


@rollout.command()
@SERVICE
@click.option("--strategy", type=click.Choice([s.value for s in Strategy]), required=True)
@click.option("--version", "version", required=True, help="The version the new release announces.")
@click.option("--command", default=None, help="Another install's `delinkcious` (default this one).")
@click.option(
    "--env",
    multiple=True,
    callback=_env,
    metavar="NAME=VALUE",
    help="A setting of the new release only, e.g. DELINKCIOUS_FAULTS for a drill.",
)
@click.option(
    "--replicas",
    type=click.IntRange(1, 9),
    default=None,
    help="Replicas of the new release (default: as many as run now).",
)
@click.option("--max-surge", type=click.IntRange(0, 9), default=1, show_default=True)
@click.option("--max-unavailable", type=click.IntRange(0, 9), default=0, show_default=True)
@click.option(
    "--steps",
    default="5,25,50,100",
    show_default=True,
    callback=_steps,
    help="Canary weights, in percent of users.",
)
@click.option(
    "--pause",
    default="10s",
    show_default=True,
    callback=_seconds,
    help="How long each canary weight is held before its analysis.",
)
@click.option("--analysis/--no-analysis", default=True, show_default=True)
@click.option(
    "--window",
    default="20s",
    show_default=True,
    callback=_seconds,
    help="The metrics an analysis reads.",
)
@click.option(
    "--min-requests",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Canary calls of a method in the window before any verdict on it.",
)
@click.option(
    "--deadline",
    default="60s",
    show_default=True,
    callback=_seconds,
    help="An analysis without a verdict (too little traffic) fails after this.",
)
@click.option(
    "--scale-down-delay",
    default="30s",
    show_default=True,
    callback=_seconds,
    help="How long blue-green keeps blue warm after the switch.",
)
@click.option(
    "--smoke/--no-smoke",
    default=True,
    show_default=True,
    help="Blue-green: smoke-test green through the tester's header first.",
)
@click.option(
    "--canary-methods",
    default=None,
    help="Only these methods (comma-separated) may reach the canary.",
)
@DATA_DIR
def start(
    service: str,
    strategy: str,
    version: str,
    command: str | None,
    env: dict[str, str],
    replicas: int | None,
    max_surge: int,
    max_unavailable: int,
    steps: list[int],
    pause: float,
    analysis: bool,
    window: float,
    min_requests: int,
    deadline: float,
    scale_down_delay: float,
    smoke: bool,
    canary_methods: str | None,
    data_dir: Path,
) -> None:
    """Start a new version of SERVICE beside the current one and move traffic to it."""
    chosen = Strategy(strategy)
    if service not in ROUTED and chosen in (Strategy.BLUE_GREEN, Strategy.CANARY):
        raise click.UsageError(f"nothing calls {service}: recreate or rolling only")
    params = dict(
        max_surge=max_surge,
        max_unavailable=max_unavailable,
        steps=steps,
        pause=pause,
        analysis=analysis,
        window=window,
        min_requests=min_requests,
        deadline=deadline,
        scale_down_delay=scale_down_delay,
        smoke=smoke,
        canary_methods=canary_methods.split(",") if canary_methods else None,
    )
    _run(
        data_dir,
        service,
        lambda cluster, store: _begin(
            cluster,
            store,
            service,
            chosen,
            Release(version=version, command=command, env=env),
            replicas,
            params,
        ),
    )


async def _begin(
    cluster: LocalCluster,
    store: Store,
    service: str,
    strategy: Strategy,
    target: Release,
    replicas: int | None,
    params: dict[str, Any],
    undo_of: int | None = None,
) -> Rollout:
    history = store.load()
    if history.current is not None:
        raise click.ClickException(
            f"rollout #{history.current.id} of {service} is {history.current.phase}: "
            "promote, abort or resume it first"
        )
    running = [p for p in cluster.processes() if p.service == service]
    if not running:
        raise click.ClickException(f"no {service} process runs")
    build = (await cluster.http.get(f"{cluster.url(running[0].name)}/version", timeout=5)).json()
    first = running[0]
    source = Release(version=build["version"], command=first.command, env=dict(first.env))
    if source.version == target.version:
        raise click.ClickException(f"{service} runs {target.version} already")
    rollout = Rollout(
        id=max((r.id for r in history.rollouts), default=0) + 1,
        service=service,
        strategy=strategy,
        source=source,
        target=target,
        params=Params(replicas=replicas or len(running), **params),
        old=[p.name for p in running],
        started=now(),
        undo_of=undo_of,
    )
    history.rollouts.append(rollout)
    store.save(history)
    return rollout


@rollout.command()
@SERVICE
@DATA_DIR
def resume(service: str, data_dir: Path) -> None:
    """Carry on with SERVICE's rollout from where it stood (after its command died)."""
    _run(data_dir, service, None)


@rollout.command()
@SERVICE
@click.option("--full", is_flag=True, help="A canary: skip the remaining steps, to 100 %.")
@DATA_DIR
def promote(service: str, full: bool, data_dir: Path) -> None:
    """End the current pause or analysis wait (blue-green: retire blue now)."""
    _ask(data_dir, service, PROMOTE_FULL if full else PROMOTE)


@rollout.command()
@SERVICE
@DATA_DIR
def abort(service: str, data_dir: Path) -> None:
    """Send all traffic back to the old release and retire the new one."""
    _ask(data_dir, service, ABORT)


@rollout.command()
@SERVICE
@DATA_DIR
def undo(service: str, data_dir: Path) -> None:
    """Back to the version before the last rollout: at once while blue-green keeps blue
    warm, else as a new rollout by the same strategy."""
    store = Store(data_dir, service)
    if store.load().current is not None:
        _ask(data_dir, service, UNDO)
        return
    last = next((r for r in reversed(store.load().rollouts) if r.phase is Phase.SUCCEEDED), None)
    if last is None:
        raise click.ClickException(f"no rollout of {service} to undo")
    params = last.params.model_dump(exclude={"replicas"})
    _run(
        data_dir,
        service,
        lambda cluster, s: _begin(
            cluster,
            s,
            service,
            last.strategy,
            last.source,
            last.params.replicas,
            params,
            undo_of=last.id,
        ),
    )


@rollout.command()
@SERVICE
@DATA_DIR
def status(service: str, data_dir: Path) -> None:
    """Where SERVICE's latest rollout stands."""
    history = Store(data_dir, service).load()
    if not history.rollouts:
        click.echo(f"no rollout of {service} yet")
        return
    latest = history.rollouts[-1]
    click.echo(
        f"rollout #{latest.id} of {service}: {latest.strategy} {latest.source.version} -> "
        f"{latest.target.version}, {latest.phase}"
        + (
            f", canary weight {latest.weight / 100:g} %"
            if latest.strategy is Strategy.CANARY
            else ""
        )
    )
    for event in latest.events[-8:]:
        click.echo(f"  {event.at}  {event.what}")


@rollout.command(name="history")
@SERVICE
@DATA_DIR
def show_history(service: str, data_dir: Path) -> None:
    """Every rollout of SERVICE: what ran, when, and with which verdicts."""
    history: History = Store(data_dir, service).load()
    if not history.rollouts:
        click.echo(f"no rollout of {service} yet")
    for item in history.rollouts:
        verdicts = [e.verdict for e in item.events if e.verdict]
        undo = f" (undo of #{item.undo_of})" if item.undo_of else ""
        click.echo(
            f"#{item.id} {item.strategy} {item.source.version} -> {item.target.version}{undo}: "
            f"{item.phase}; {item.started} .. {item.ended or 'now'}; "
            f"verdicts: {', '.join(verdicts) or 'none'}"
        )


def _ask(data_dir: Path, service: str, what: str) -> None:
    store = Store(data_dir, service)
    try:
        rollout = request(store, what)
    except RuntimeError as exc:
        raise click.ClickException(f"{service}: {exc}") from None
    if store.holder() is not None:
        click.echo(f"{what} asked of rollout #{rollout.id}; its controller acts on it")
        return
    _run(data_dir, service, None)  # nothing drives it: drive it here


def _run(data_dir: Path, service: str, begin: Any) -> None:
    """Drive the service's rollout here, after ``begin`` made one (None: the current)."""
    store = Store(data_dir, service)
    where = data_dir.resolve()

    async def drive() -> Rollout:
        async with httpx.AsyncClient(trust_env=False) as http:
            cluster = LocalCluster(where, http)
            with store.driving():
                if begin is not None:
                    await begin(cluster, store)
                return await Controller(cluster, store, click.echo).drive()

    try:
        ended = asyncio.run(drive())
    except (ClusterError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    if ended.phase in (Phase.ABORTED, Phase.UNDONE):
        raise SystemExit(3 if ended.phase is Phase.ABORTED else 0)
