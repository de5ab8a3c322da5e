"""Run several child processes as one unit, for ``delinkcious up --processes``.

Each service runs in its own process, as it does in production, and the supervisor makes them
behave like one program: one output stream with a tag per line, one "ready" moment, and
self-healing as a kubelet gives it: a child that dies once all were ready is started again
after a backoff that doubles while it keeps crashing (a crash loop, said so) and resets once
it has stayed up; the others keep serving meanwhile. A child that dies before everything was
ready stops the start (a wrong configuration should not loop). Ctrl-C or SIGTERM stops all of
them gracefully; and if the supervisor itself is killed, the kernel kills the children
(Linux), so a crash never leaves services holding ports and files.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import httpx

_POLL_INTERVAL = 0.05  # seconds between two readiness probes of one child
_PROBE_TIMEOUT = 0.5  # a probe that hangs longer counts as "not ready yet"
_DRAIN_TIMEOUT = 1.0  # how long to wait for the last output of a child that has exited
_READ_SIZE = 1 << 16
_MAX_LINE = 1 << 20  # a longer "line" (no newline in 1 MiB) is shown in pieces
_COLORS = (36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91)  # ANSI foreground colours
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1
# Looked up before any fork: the child may only make the call, not load a library.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


@dataclass(frozen=True)
class ProcessSpec:
    """One child: what to run, in which environment, and how to tell that it is ready."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    ready_url: str | None = None


@dataclass(frozen=True)
class Backoff:
    """When to start a dead child again: ``first`` seconds, doubling up to ``most`` while it
    keeps dying within ``stable_after`` seconds of its start; a crash loop once it has done
    so ``loop_after`` times in a row."""

    first: float = 0.5
    most: float = 30.0
    stable_after: float = 30.0
    loop_after: int = 3


@dataclass
class _Child:
    spec: ProcessSpec
    tag: str
    process: asyncio.subprocess.Process
    pump: asyncio.Task[None]
    ready: bool = False
    started: float = 0.0
    restarts: int = 0
    streak: int = 0  # deaths in a row, each soon after its start
    spawning: asyncio.Future[_Child] | None = None
    keeper: asyncio.Task[None] | None = None  # restarts it when it dies

    def signal(self, sig: signal.Signals) -> None:
        """Signal the child's whole process group, so whatever it started goes with it."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def kill_leftovers(self) -> None:
        """SIGKILL what is left in the child's process group after the child itself ended.

        The group id cannot be reused while any member is alive, so this reaches only
        processes the child started.
        """
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


async def supervise(
    specs: Sequence[ProcessSpec],
    *,
    out: TextIO = sys.stdout,
    on_ready: Callable[[], None] | None = None,
    start_timeout: float = 60.0,
    stop_timeout: float = 15.0,
    backoff: Backoff = Backoff(),
    desired: Callable[[], Sequence[ProcessSpec] | None] | None = None,
    reconcile_every: float = 0.5,
) -> int:
    """Run ``specs`` until SIGINT/SIGTERM arrives, healing the children that die.

    ``on_ready`` is called once, when every ``ready_url`` has answered 200; from then on a
    child that exits is started again (``backoff``), and, when ``desired`` is given, the
    children are made to match what it returns every ``reconcile_every`` seconds (None:
    keep them as they are): a new name is started, a name no longer there is stopped, a
    changed one replaced. Returns 0 after a stop asked by a signal, 1 when a child
    exited, could not start or was not ready before everything was ready. No child is
    left running when it returns (or raises).
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    children: list[_Child] = []

    def on_signal(sig: signal.Signals) -> None:
        if stopping.is_set():  # a second Ctrl-C: the user does not want to wait
            _say(out, f"received {sig.name} again: killing all processes")
            for child in children:
                child.signal(signal.SIGKILL)
            return
        _say(out, f"received {sig.name}: stopping all processes")
        stopping.set()

    previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        for spec, tag in zip(specs, _tags(specs, color=out.isatty()), strict=True):
            try:
                children.append(await _spawn(spec, tag, out))
            except OSError as exc:
                _say(out, f"{spec.name} could not start: {exc}")
                return 1
        async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT, trust_env=False) as client:
            status = await _start(children, stopping, out, on_ready, start_timeout, client)
            if status is not None:
                return status
            for child in children:
                child.keeper = asyncio.create_task(_keep(child, out, backoff, client))
            if desired is None:
                await stopping.wait()
                return 0
            width = max((len(child.spec.name) for child in children), default=0)
            while not stopping.is_set():
                wanted = desired()
                if wanted is not None:
                    width = max([width, *(len(spec.name) for spec in wanted)])
                    await _reconcile(children, wanted, out, backoff, client, stop_timeout, width)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), reconcile_every)
            return 0
    finally:
        try:
            keepers = [child.keeper for child in children if child.keeper is not None]
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            for child in children:  # a restart caught mid-spawn: stop what it started
                if child.spawning is not None:
                    with contextlib.suppress(Exception):
                        fresh = await child.spawning
                        child.process, child.pump = fresh.process, fresh.pump
            await _stop(children, out, stop_timeout)
            if any(child.restarts for child in children):
                counts = ", ".join(f"{c.spec.name} {c.restarts}" for c in children if c.restarts)
                _say(out, f"restarts: {counts}")
        finally:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)


async def _start(
    children: list[_Child],
    stopping: asyncio.Event,
    out: TextIO,
    on_ready: Callable[[], None] | None,
    start_timeout: float,
    client: httpx.AsyncClient,
) -> int | None:
    """Wait until every child is ready (None), or for the first exit, stop request or the
    deadline (the exit status to return)."""
    # Any: waited on, and cancelled, together with futures of other results.
    exits: dict[asyncio.Future[Any], _Child] = {
        asyncio.ensure_future(child.process.wait()): child for child in children
    }
    stop = asyncio.ensure_future(stopping.wait())
    ready = asyncio.gather(*(_until_ready(child, client) for child in children))
    try:
        done, _ = await asyncio.wait(
            {*exits, stop, ready}, timeout=start_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if stop in done:
            return 0
        exited = [child for task, child in exits.items() if task in done]
        for child in exited:
            # Its last words (often a traceback) first, then the verdict.
            await asyncio.wait([child.pump], timeout=_DRAIN_TIMEOUT)
            _say(out, _exit_reason(child))
        if exited:
            return 1
        if ready in done:
            ready.result()  # a bad ready_url is a bug: let it raise
            if on_ready is not None:
                on_ready()
            return None
        late = ", ".join(
            f"{child.spec.name} ({child.spec.ready_url})" for child in children if not child.ready
        )
        _say(out, f"not ready within {start_timeout:g} s: {late}")
        return 1
    finally:
        for task in (*exits, stop, ready):
            task.cancel()
        # The probes must end before the client closes; gathering also retrieves their
        # cancellation, which would otherwise be logged as never retrieved.
        await asyncio.gather(ready, return_exceptions=True)


async def _keep(child: _Child, out: TextIO, backoff: Backoff, client: httpx.AsyncClient) -> None:
    """Forever: when the child dies, say why, wait out its backoff, start it again."""
    loop = asyncio.get_running_loop()
    delay = backoff.first
    while True:
        await child.process.wait()
        died = loop.time()
        await asyncio.wait([child.pump], timeout=_DRAIN_TIMEOUT)
        if died - child.started >= backoff.stable_after:
            child.streak, delay = 0, backoff.first
        child.streak += 1
        child.restarts += 1
        looping = (
            f"; crash loop: {child.streak} deaths in a row"
            if child.streak >= backoff.loop_after
            else ""
        )
        _say(out, f"{_exit_reason(child)}; restart {child.restarts} in {delay:g} s{looping}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, backoff.most)
        # Shielded, and kept on the child until done: if a stop cancels this keeper now,
        # the supervisor still learns of the process and stops it.
        child.spawning = asyncio.ensure_future(_spawn(child.spec, child.tag, out))
        try:
            fresh = await asyncio.shield(child.spawning)
        except OSError as exc:
            child.spawning = None
            _say(out, f"{child.spec.name} could not start: {exc}")
            continue  # its process is still the dead one: wait() returns at once
        child.spawning = None
        child.process, child.pump, child.started = fresh.process, fresh.pump, fresh.started
        child.ready = False
        back = asyncio.ensure_future(_until_ready(child, client))
        gone = asyncio.ensure_future(child.process.wait())
        try:
            await asyncio.wait({back, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            back.cancel()
            gone.cancel()
        if child.ready:
            _say(out, f"{child.spec.name} is back, {loop.time() - died:.1f} s after it died")


async def _reconcile(
    children: list[_Child],
    wanted: Sequence[ProcessSpec],
    out: TextIO,
    backoff: Backoff,
    client: httpx.AsyncClient,
    stop_timeout: float,
    width: int,
) -> None:
    """Stop the children no longer wanted (or wanted otherwise), start the new ones."""
    by_name = {spec.name: spec for spec in wanted}
    for child in list(children):
        if by_name.get(child.spec.name) != child.spec:
            why = "changed" if child.spec.name in by_name else "no longer wanted"
            _say(out, f"stopping {child.spec.name}: {why}")
            await _retire(child, out, stop_timeout)
            children.remove(child)
    running = {child.spec.name for child in children}
    for spec in wanted:
        if spec.name in running:
            continue
        color = _COLORS[len(children) % len(_COLORS)]
        tag = (
            f"\x1b[{color}m{spec.name:<{width}} |\x1b[0m "
            if out.isatty()
            else f"{spec.name:<{width}} | "
        )
        try:
            child = await _spawn(spec, tag, out)
        except OSError as exc:
            _say(out, f"{spec.name} could not start: {exc}")
            continue
        _say(out, f"started {spec.name}")
        children.append(child)
        child.keeper = asyncio.create_task(_keep(child, out, backoff, client))


async def _retire(child: _Child, out: TextIO, grace: float) -> None:
    """Stop one child for good: no restart, SIGTERM, then SIGKILL after ``grace``."""
    if child.keeper is not None:
        child.keeper.cancel()
        await asyncio.gather(child.keeper, return_exceptions=True)
    if child.spawning is not None:
        with contextlib.suppress(Exception):
            fresh = await child.spawning
            child.process, child.pump = fresh.process, fresh.pump
    await _stop([child], out, grace)


async def _spawn(spec: ProcessSpec, tag: str, out: TextIO) -> _Child:
    process = await asyncio.create_subprocess_exec(
        *spec.argv,
        env=dict(spec.env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_child_setup(os.getpid()),
    )
    assert process.stdout is not None  # stdout=PIPE
    pump = asyncio.create_task(_pump(process.stdout, tag, out))
    return _Child(spec, tag, process, pump, started=asyncio.get_running_loop().time())


def _child_setup(parent: int) -> Callable[[], None]:
    """What the child does between fork and exec: its own process group, and die with us.

    Its own group lets a stop reach anything the child starts, and keeps a terminal's Ctrl-C
    for the supervisor, which then stops the children in order. PR_SET_PDEATHSIG makes the
    kernel SIGKILL the child when the supervisor dies, even by SIGKILL.
    """

    def setup() -> None:
        os.setpgid(0, 0)
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != parent:  # the supervisor died before the call took effect
                os._exit(1)

    return setup


async def _until_ready(child: _Child, client: httpx.AsyncClient) -> None:
    url = child.spec.ready_url
    while url is not None:
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(url)).status_code == 200:
                break
        await asyncio.sleep(_POLL_INTERVAL)
    child.ready = True


async def _pump(reader: asyncio.StreamReader, tag: str, out: TextIO) -> None:
    """Copy a child's output to ``out`` in whole lines, each behind the child's tag.

    Lines are written whole in one call from the event loop, so lines of different
    children interleave but never mix.
    """
    pending = b""
    while chunk := await reader.read(_READ_SIZE):
        *lines, pending = (pending + chunk).split(b"\n")
        if len(pending) > _MAX_LINE:
            lines.append(pending)
            pending = b""
        _write(out, tag, lines)
    _write(out, tag, [pending] if pending else [])


def _write(out: TextIO, tag: str, lines: list[bytes]) -> None:
    if lines:
        out.write("".join(f"{tag}{_text(line)}\n" for line in lines))
        out.flush()


def _text(line: bytes) -> str:
    return line.removesuffix(b"\r").decode(errors="replace")


async def _stop(children: list[_Child], out: TextIO, grace: float) -> None:
    """SIGTERM every child, SIGKILL those still running after ``grace`` s, drain the output."""
    if not children:
        return
    waits = {asyncio.ensure_future(child.process.wait()): child for child in children}
    try:
        for child in children:
            child.signal(signal.SIGTERM)
        _, late = await asyncio.wait(waits, timeout=grace)
        for task in late:
            _say(out, f"{waits[task].spec.name} did not stop within {grace:g} s: killing it")
            waits[task].signal(signal.SIGKILL)
        if late:
            await asyncio.wait(late)
    finally:
        for task, child in waits.items():
            task.cancel()
            child.signal(signal.SIGKILL)  # only if still running: we were cancelled
            child.kill_leftovers()
    pumps = [child.pump for child in children]
    await asyncio.wait(pumps, timeout=_DRAIN_TIMEOUT)
    for pump in pumps:
        pump.cancel()


def _tags(specs: Sequence[ProcessSpec], *, color: bool) -> list[str]:
    """``name | `` padded to the longest name, coloured per child on a terminal."""
    width = max((len(spec.name) for spec in specs), default=0)
    return [
        f"\x1b[{_COLORS[i % len(_COLORS)]}m{spec.name:<{width}} |\x1b[0m "
        if color
        else f"{spec.name:<{width}} | "
        for i, spec in enumerate(specs)
    ]


def _exit_reason(child: _Child) -> str:
    code = child.process.returncode
    assert code is not None  # only asked once the child has exited
    if code < 0:
        return f"{child.spec.name} was killed by {signal.Signals(-code).name}"
    return f"{child.spec.name} exited with code {code}"


def _say(out: TextIO, message: str) -> None:
    out.write(f"{message}\n")
    out.flush()
