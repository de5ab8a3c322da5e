"""``supervise`` with real child processes: output, readiness, crashes, signals, no orphans.

The children are small Python scripts; the only network traffic is readiness probes to
http.server instances on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from delinkcious.platform.supervisor import Backoff, ProcessSpec, supervise

CHILD = textwrap.dedent(
    """
    import http.server, os, signal, sys, time

    mode, args = sys.argv[1], sys.argv[2:]
    print(f"pid {os.getpid()}", flush=True)
    if mode == "graceful":  # says goodbye on SIGTERM
        def bye(*_):
            print("stopping gracefully", flush=True)
            sys.exit(0)

        signal.signal(signal.SIGTERM, bye)
    elif mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
    elif mode == "burst":  # many lines, block-buffered: writes split lines anywhere
        tag, count = args[0], int(args[1])
        print(f"{tag} to stderr", file=sys.stderr, flush=True)
        for i in range(count):
            sys.stdout.write(f"{tag}-{i}-" + "x" * (i % 500) + "\\n")
        sys.stdout.write(f"{tag}-long-" + "y" * 200_000 + "\\n")
        print(f"{tag} END", flush=True)
    elif mode == "crash":
        time.sleep(float(args[0]))
        print("about to crash", flush=True)
        sys.exit(int(args[1]))
    if mode in {"serve", "graceful", "stubborn"}:  # answer 200 on a loopback port after a delay
        time.sleep(float(args[1]))

        class Ok(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_):
                pass

        server = http.server.HTTPServer(("127.0.0.1", int(args[0])), Ok)
        print("serving", flush=True)
        server.serve_forever()
    while True:
        time.sleep(60)
    """
)

HARNESS = textwrap.dedent(
    """
    import asyncio, os, sys
    from delinkcious.platform.supervisor import ProcessSpec, supervise

    child, loop = sys.argv[1:]
    specs = [
        ProcessSpec(name, [sys.executable, child, "sleep"], dict(os.environ))
        for name in ("one", "two")
    ]
    if loop == "uvloop":  # what the CLI runs on
        import uvloop

        sys.exit(uvloop.run(supervise(specs)))
    sys.exit(asyncio.run(supervise(specs)))
    """
)


@pytest.fixture
def child(tmp_path: Path) -> Callable[..., list[str]]:
    """argv for the child script in one of its modes."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return lambda *args: [sys.executable, str(script), *map(str, args)]


def spec(name: str, argv: list[str], ready_url: str | None = None) -> ProcessSpec:
    return ProcessSpec(name, argv, dict(os.environ), ready_url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def served(
    child: Callable[..., list[str]], name: str, delay: float, mode: str = "serve"
) -> ProcessSpec:
    """A child that answers its ready_url once ``delay`` seconds have passed."""
    port = free_port()
    return spec(name, child(mode, port, delay), f"http://127.0.0.1:{port}/healthz")


def pids(output: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"\| pid (\d+)$", output, re.MULTILINE)]


def gone(pid: int) -> bool:
    """True once the process no longer exists or is a zombie (dead, waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


def send_self(sig: signal.Signals) -> Callable[[], None]:
    return lambda: os.kill(os.getpid(), sig)


async def test_every_line_intact_behind_its_aligned_prefix(
    child: Callable[..., list[str]],
) -> None:
    out = io.StringIO()
    count = 3000

    async def stop_when_both_done() -> None:
        while out.getvalue().count(" END\n") < 2:  # noqa: ASYNC110 (polling the sink)
            await asyncio.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = asyncio.create_task(stop_when_both_done())
    specs = [spec("alpha", child("burst", "a", count)), spec("b", child("burst", "b", count))]
    assert await asyncio.wait_for(supervise(specs, out=out, stop_timeout=2), 15) == 0
    await stopper

    seen: dict[str, list[str]] = {"a": [], "b": []}
    for line in out.getvalue().splitlines():
        if line.startswith("received SIGTERM"):
            continue
        match = re.fullmatch(r"(alpha|b    ) \| (.*)", line)
        assert match, line[:200]
        body = match[2]
        tag = "a" if match[1] == "alpha" else "b"
        if not body.startswith("pid "):
            seen[tag].append(body)
    for tag, lines in seen.items():
        assert lines[0] == f"{tag} to stderr"
        assert lines[1 : count + 1] == [f"{tag}-{i}-" + "x" * (i % 500) for i in range(count)]
        assert lines[count + 1 :] == [f"{tag}-long-" + "y" * 200_000, f"{tag} END"]


async def test_on_ready_is_called_once_when_every_child_answers(
    child: Callable[..., list[str]],
) -> None:
    out = io.StringIO()
    specs = [served(child, "links", 0.2), served(child, "users", 0.6), spec("x", child("sleep"))]
    calls: list[float] = []

    def on_ready() -> None:
        calls.append(time.monotonic())
        assert out.getvalue().count("| serving") == 2
        os.kill(os.getpid(), signal.SIGTERM)

    start = time.monotonic()
    assert await supervise(specs, out=out, on_ready=on_ready, stop_timeout=2) == 0
    assert len(calls) == 1
    assert calls[0] - start >= 0.6
    assert all(gone(pid) for pid in pids(out.getvalue()))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_a_child_that_keeps_dying_is_restarted_with_a_growing_backoff(
    child: Callable[..., list[str]],
) -> None:
    out = Terminal()
    ready: list[bool] = []
    specs = [served(child, "users", 0), spec("links", child("crash", 1.0, 3))]

    async def stop_after_three_restarts() -> None:
        while "restart 3 in" not in out.getvalue():  # noqa: ASYNC110 (polling the sink)
            await asyncio.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = asyncio.create_task(stop_after_three_restarts())
    backoff = Backoff(first=0.1, stable_after=10, loop_after=3)
    status = await supervise(
        specs, out=out, on_ready=lambda: ready.append(True), stop_timeout=2, backoff=backoff
    )
    await stopper

    assert status == 0 and ready == [True]  # the deaths came after start-up
    text = out.getvalue()
    assert "links exited with code 3; restart 1 in 0.1 s\n" in text
    assert "links exited with code 3; restart 2 in 0.2 s\n" in text
    assert "links exited with code 3; restart 3 in 0.4 s; crash loop: 3 deaths in a row\n" in text
    assert text.index("about to crash") < text.index("links exited with code 3")
    assert re.search(r"\x1b\[\d+mlinks \|\x1b\[0m about to crash", text)  # coloured tags
    assert "restarts: links 3\n" in text
    plain = text.replace("\x1b[0m", "")
    assert len(re.findall(r"users \|\x1b\[0m pid", text)) == 1  # the others keep serving
    assert all(gone(pid) for pid in pids(plain))


async def test_a_killed_child_is_back_and_ready_soon(child: Callable[..., list[str]]) -> None:
    out = io.StringIO()
    victim = served(child, "links", 0.2)
    ready = asyncio.Event()

    async def kill_then_wait_for_it() -> None:
        await ready.wait()  # killed before every child was ready, it would stop the start
        (first,) = pids(out.getvalue())
        os.kill(first, signal.SIGKILL)
        for _ in range(500):
            if "links is back" in out.getvalue():
                break
            await asyncio.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = asyncio.create_task(kill_then_wait_for_it())
    status = await supervise([victim], out=out, on_ready=ready.set, stop_timeout=2)
    await killer
    text = out.getvalue()
    assert status == 0
    assert "links was killed by SIGKILL; restart 1 in 0.5 s\n" in text
    back = re.search(r"links is back, ([\d.]+) s after it died\n", text)
    assert back is not None and 0.5 <= float(back.group(1)) < 5
    assert len(pids(text)) == 2 and all(gone(pid) for pid in pids(text))


async def test_a_child_that_cannot_start_fails_and_stops_the_rest(
    child: Callable[..., list[str]], tmp_path: Path
) -> None:
    out = io.StringIO()
    specs = [spec("users", child("sleep")), spec("links", [str(tmp_path / "missing")])]
    assert await supervise(specs, out=out, stop_timeout=2) != 0
    assert "links could not start" in out.getvalue()
    assert all(gone(pid) for pid in pids(out.getvalue()))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_stops_every_child_gracefully(
    child: Callable[..., list[str]], sig: signal.Signals
) -> None:
    out = io.StringIO()
    before = signal.getsignal(sig)
    specs = [served(child, "links", 0), served(child, "news", 0, "graceful")]
    assert await supervise(specs, out=out, on_ready=send_self(sig), stop_timeout=2) == 0

    text = out.getvalue()
    assert f"received {sig.name}" in text
    assert "news  | stopping gracefully\n" in text  # output drained after the stop
    assert len(pids(text)) == 2
    assert all(gone(pid) for pid in pids(text))
    assert signal.getsignal(sig) == before


async def test_a_child_ignoring_sigterm_is_killed_after_the_stop_timeout(
    child: Callable[..., list[str]],
) -> None:
    out = io.StringIO()
    specs = [served(child, "links", 0), served(child, "stubborn", 0, "stubborn")]
    start = time.monotonic()
    status = await supervise(specs, out=out, on_ready=send_self(signal.SIGTERM), stop_timeout=0.5)
    assert status == 0
    assert time.monotonic() - start >= 0.5
    text = out.getvalue()
    assert "stubborn did not stop within 0.5 s: killing it" in text
    assert "links did not stop" not in text
    assert all(gone(pid) for pid in pids(text))


async def test_children_not_ready_in_time_are_named_and_stopped(
    child: Callable[..., list[str]],
) -> None:
    out = io.StringIO()
    slow = served(child, "slow", 30)
    specs = [served(child, "fast", 0), slow]
    ready: list[bool] = []
    start = time.monotonic()
    status = await supervise(
        specs, out=out, on_ready=lambda: ready.append(True), start_timeout=0.8, stop_timeout=2
    )
    assert status != 0
    assert not ready
    assert 0.8 <= time.monotonic() - start < 5
    assert f"not ready within 0.8 s: slow ({slow.ready_url})\n" in out.getvalue()
    assert all(gone(pid) for pid in pids(out.getvalue()))


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_no_child_outlives_a_supervisor_process(
    tmp_path: Path, loop: str, sig: signal.Signals
) -> None:
    """SIGINT is a clean stop (exit 0); after a SIGKILL the kernel kills the children."""
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "harness.py").write_text(HARNESS)
    harness = subprocess.Popen(
        [sys.executable, str(tmp_path / "harness.py"), str(tmp_path / "child.py"), loop],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert harness.stdout is not None
    children: list[int] = []
    try:
        while len(children) < 2:
            line = harness.stdout.readline()
            assert line, "the harness ended early"
            children += pids(line.rstrip("\n"))
        harness.send_signal(sig)
        assert harness.wait(10) == (0 if sig == signal.SIGINT else -signal.SIGKILL)
    finally:
        harness.kill()
        harness.wait()
        harness.stdout.close()
    deadline = time.monotonic() + 5
    while not all(gone(pid) for pid in children):
        assert time.monotonic() < deadline, "children outlived their supervisor"
        time.sleep(0.02)


async def test_the_children_follow_what_is_desired(child: Callable[..., list[str]]) -> None:
    """A new name is started, a missing one stopped for good (not restarted), a changed one
    replaced: what `up --processes` does when `processes.yaml` changes."""
    out = io.StringIO()
    first = served(child, "links", 0)
    second = served(child, "links-v2", 0)
    wanted: list[list[ProcessSpec]] = [[first, second], [second], [second]]

    def desired() -> list[ProcessSpec] | None:
        return wanted.pop(0) if wanted else None

    async def stop_when_done() -> None:
        for _ in range(500):
            if "stopping links: no longer wanted" in out.getvalue() and not wanted:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # no restart of the stopped one comes
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = asyncio.create_task(stop_when_done())
    status = await supervise(
        [first], out=out, stop_timeout=2, desired=desired, reconcile_every=0.05
    )
    await stopper
    text = out.getvalue()
    assert status == 0
    assert "started links-v2\n" in text
    assert "stopping links: no longer wanted\n" in text
    assert "restart" not in text  # stopped on purpose: never healed back
    assert all(gone(pid) for pid in pids(text))
