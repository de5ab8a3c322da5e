"""Benchmark authenticated ``GET /v1/links`` on ``delinkcious up`` with ``wrk``.

Starts the embedded system on a free loopback port with a fresh data dir, loads one user
with 1,000 links, drives ``?limit=10`` and ``?limit=100`` with ``wrk --latency`` and prints
requests/s, p50/p99 latency, errors, startup time and the server's RSS next to the budget
in ``DESIGN.md``. It prints figures and never fails on them: a benchmark, not a test.

    .venv/bin/python benchmarks/list_links.py [--duration 10] [--connections 32] [--threads 2]
        [--replicas 4] [--rounds 6] [--round-seconds 3] [--compare-only]

Then it prints what the observability middleware chain costs: servers with the chain on
(as in production) and off, several processes of each, in rounds that go round all of
them (``compare``). With two CPUs or more the server runs on CPU 0 and wrk on the others,
and every measurement waits until the link checker has checked every link.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent / "delinkcious"
LINK_COUNT = 1000
LOAD_CONCURRENCY = 16
WARMUP_SECONDS = 2
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
SETTLE_TIMEOUT_SECONDS = 120.0
PAGE_SIZES = (10, 100)

BUDGET_STARTUP_S = 2.0
BUDGET_RPS_LIMIT_10 = 1600.0
BUDGET_RSS_MIB = 135.0

USERNAME = "bench"
PASSWORD = "correct horse battery staple"


class BenchmarkError(Exception):
    """The benchmark could not run (not a figure over budget)."""


@dataclass
class Server:
    """A running ``delinkcious up`` process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    startup_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass
class WrkResult:
    """The figures parsed from one ``wrk --latency`` run."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


@dataclass
class Memory:
    """Resident set of a process, in MiB: current (VmRSS) and peak (VmHWM)."""

    rss_mib: float
    hwm_mib: float


# --- plumbing -------------------------------------------------------------------------------


def require_wrk() -> str:
    """Return the path of ``wrk``, or exit 1 with the way to install it."""
    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "error: `wrk` is not installed; install it with `sudo apt-get install wrk`.",
            file=sys.stderr,
        )
        sys.exit(1)
    return wrk


def pinning() -> tuple[list[str], list[str]]:
    """``taskset`` prefixes: the server on CPU 0, wrk on the others (none with one CPU).

    Apart, wrk does not take the server's CPU in turns, and the figures stop depending on
    how the scheduler happened to share two cores between two busy programs.
    """
    cpus = os.cpu_count() or 1
    taskset = shutil.which("taskset")
    if taskset is None or cpus < 2:
        return [], []
    return [taskset, "-c", "0"], [taskset, "-c", f"1-{cpus - 1}"]


SERVER_PIN, WRK_PIN = pinning()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``), all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def local_client(base_url: str = "", token: str | None = None) -> httpx.Client:
    """A client that never goes through a proxy (all traffic stays on 127.0.0.1)."""
    headers = {"Access-Token": token} if token else None
    return httpx.Client(base_url=base_url, headers=headers, trust_env=False, timeout=10)


def wait_healthy(server: Server, started: float, timeout: float = STARTUP_TIMEOUT_SECONDS) -> float:
    """Poll ``/healthz`` until it answers 200; return seconds since ``started``."""
    deadline = started + timeout
    with local_client() as client:
        while time.perf_counter() < deadline:
            if server.process.poll() is not None:
                raise BenchmarkError("delinkcious up exited before it was healthy")
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            time.sleep(0.01)
    raise BenchmarkError(f"delinkcious up was not healthy within {timeout:.0f} s")


def interrupt(process: subprocess.Popen[bytes], name: str, timeout: float) -> int:
    """Ctrl-C a process like a person would; kill it if it does not stop in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"{name} ignored SIGINT; killing it", file=sys.stderr)
            process.kill()
            process.wait()
    print(f"{name} stopped (exit code {process.returncode})")
    return process.returncode


def stop(server: Server) -> None:
    code = interrupt(server.process, "server", STOP_TIMEOUT_SECONDS)
    if code != 0:
        tail = server.log.read_text(errors="replace")[-4000:]
        print(f"server output (last 4000 characters):\n{tail}", file=sys.stderr)


def spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a server process, its output to ``log``, ``env`` over ours."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,  # Ctrl-C reaches only us; we stop the server ourselves
        )


@contextlib.contextmanager
def running_server(
    workdir: Path,
    env: dict[str, str],
    runner: list[str] = SERVER_PIN,
    startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
) -> Iterator[Server]:
    """Spawn ``delinkcious up`` on a free port, wait until healthy, always stop it.

    ``runner`` is what it runs under: ``taskset`` by default, or a profiler.
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "server.log"
    command = [
        *runner, sys.executable, str(BIN), "up",
        "--port", str(port), "--data-dir", str(workdir / "data"),
    ]  # fmt: skip
    started = time.perf_counter()
    server = Server(process=spawn(command, log, env), port=port, log=log)
    try:
        server.startup_s = wait_healthy(server, started, startup_timeout)
        yield server
    finally:
        stop(server)


def memory(pid: int) -> Memory:
    """Read VmRSS and VmHWM (peak resident set) from ``/proc/<pid>/status``."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return Memory(rss_mib=fields["VmRSS"], hwm_mib=fields["VmHWM"])


# --- data -----------------------------------------------------------------------------------


def login(base_url: str) -> str:
    """Register the benchmark user and return a session token."""
    with local_client(base_url) as client:
        account = {"username": USERNAME, "email": f"{USERNAME}@example.com", "password": PASSWORD}
        client.post("/v1/users", json=account).raise_for_status()
        session = client.post("/v1/sessions", json={"username": USERNAME, "password": PASSWORD})
        session.raise_for_status()
        return str(session.json()["access_token"])


def link_body(i: int) -> dict[str, object]:
    """The i-th benchmark link: a title, a description and three tags."""
    return {
        "url": f"http://127.0.0.1:9/articles/{i:04d}",  # the checker must not leave this host
        "title": f"Article {i}: notes on building microservices",
        "description": f"Benchmark link number {i}, saved to measure the links listing path.",
        "tags": [f"topic{i % 10}", f"series{i % 7}", "bench"],
    }


async def load_links(base_url: str, token: str, count: int) -> None:
    """Save ``count`` links, ``LOAD_CONCURRENCY`` requests in flight at a time."""
    gate = asyncio.Semaphore(LOAD_CONCURRENCY)
    limits = httpx.Limits(max_connections=LOAD_CONCURRENCY)
    headers = {"Access-Token": token}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, trust_env=False, timeout=30
    ) as client:

        async def add(i: int) -> None:
            async with gate:
                response = await client.post("/v1/links", json=link_body(i))
            if response.status_code != 201:
                raise BenchmarkError(f"adding link {i}: {response.status_code} {response.text}")

        try:
            async with asyncio.TaskGroup() as group:
                for i in range(count):
                    group.create_task(add(i))
        except ExceptionGroup as failed:  # report the first failure, not a group of them
            raise failed.exceptions[0] from None


def wait_checked(base_url: str, token: str) -> float:
    """Wait until the link checker has checked every link; return how long that took.

    Until then it works in the background (1,000 checks, each publishing an event that
    links then consumes), and a measurement would count its CPU as the page's.
    """
    started = time.perf_counter()
    with local_client(base_url, token) as client:
        while time.perf_counter() - started < SETTLE_TIMEOUT_SECONDS:
            pending, start_token = 0, None
            while True:
                params: dict[str, str | int] = {"limit": 100}
                if start_token:
                    params["start_token"] = start_token
                page = client.get("/v1/links", params=params)
                page.raise_for_status()
                body = page.json()
                pending += sum(link["status"] == "pending" for link in body["links"])
                start_token = body["next_page_token"]
                if not start_token:
                    break
            if not pending:
                return time.perf_counter() - started
            time.sleep(0.5)
    raise BenchmarkError(f"links still pending after {SETTLE_TIMEOUT_SECONDS:.0f} s")


def check_page(base_url: str, token: str, limit: int) -> int:
    """Make sure the page wrk will hit is a 200 with ``limit`` links; return its size."""
    with local_client(base_url, token) as client:
        response = client.get("/v1/links", params={"limit": limit})
    response.raise_for_status()
    got = len(response.json()["links"])
    if got != limit:
        raise BenchmarkError(f"GET /v1/links?limit={limit} returned {got} links")
    return len(response.content)


# --- wrk ------------------------------------------------------------------------------------

_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def write_lua(path: Path, token: str) -> Path:
    """A wrk script that authenticates every request (keeps the token out of ``ps``)."""
    path.write_text(f'wrk.headers["Access-Token"] = "{token}"\n')
    return path


def run_wrk(wrk: str, url: str, lua: Path, args: argparse.Namespace, seconds: int) -> str:
    """Run ``wrk --latency`` for ``seconds`` and return its output."""
    command = [
        *WRK_PIN, wrk, "--latency", "-t", str(args.threads), "-c", str(args.connections),
        "-d", f"{seconds}s", "-s", str(lua), url,
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise BenchmarkError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def parse_wrk(output: str) -> WrkResult:
    """Pull requests/s, p50/p99 (in ms), request count and error counts out of wrk's text."""
    percentiles = {
        float(p): float(value) * _TO_MS[unit] for p, value, unit in _PERCENTILE.findall(output)
    }
    rps = _RPS.search(output)
    requests = _REQUESTS.search(output)
    if rps is None or requests is None or not {50.0, 99.0} <= percentiles.keys():
        raise BenchmarkError(f"cannot parse wrk output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET.search(output)
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=percentiles[50.0],
        p99_ms=percentiles[99.0],
        requests=int(requests.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(map(int, sockets.groups())) if sockets else 0,
    )


def bench_page(
    wrk: str, server: Server, lua: Path, args: argparse.Namespace, limit: int
) -> WrkResult:
    """Warm up, then measure one page size."""
    url = f"{server.url}/v1/links?limit={limit}"
    print(f"  limit={limit}: warm-up {WARMUP_SECONDS} s, then {args.duration} s ...", flush=True)
    run_wrk(wrk, url, lua, args, WARMUP_SECONDS)
    return parse_wrk(run_wrk(wrk, url, lua, args, args.duration))


# --- report ---------------------------------------------------------------------------------


def verdict(ok: bool, bad: str) -> str:
    return "ok" if ok else bad


def print_table(results: dict[int, WrkResult]) -> None:
    """One row per page size."""
    print()
    print(
        f"{'endpoint':<26}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
        f"{'requests':>11}{'non-2xx':>9}{'sock err':>10}"
    )
    for limit, r in results.items():
        print(
            f"{'GET /v1/links?limit=' + str(limit):<26}{r.requests_per_s:>10.1f}"
            f"{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{r.requests:>11}{r.non_2xx:>9}"
            f"{r.socket_errors:>10}"
        )
    for limit, r in results.items():
        if r.non_2xx:
            print(
                f"\n!!! limit={limit}: {r.non_2xx} responses were not 2xx/3xx -- "
                "its req/s and latency figures are INVALID !!!"
            )
        if r.socket_errors:
            print(f"\n!!! limit={limit}: {r.socket_errors} socket errors (see wrk output) !!!")


def print_budget(startup_s: float, rps_10: float, mem: Memory) -> None:
    """Each budgeted figure next to its budget; never fails."""
    rows = [
        ("startup", f"{startup_s:.2f} s", f"< {BUDGET_STARTUP_S:.0f} s",
         verdict(startup_s < BUDGET_STARTUP_S, "over")),
        ("req/s, limit=10", f"{rps_10:.1f}", f">= {BUDGET_RPS_LIMIT_10:.0f}",
         verdict(rps_10 >= BUDGET_RPS_LIMIT_10, "under")),
        ("peak RSS (VmHWM)", f"{mem.hwm_mib:.1f} MiB", f"<= {BUDGET_RSS_MIB:.0f} MiB",
         verdict(mem.hwm_mib <= BUDGET_RSS_MIB, "over")),
        ("current RSS (VmRSS)", f"{mem.rss_mib:.1f} MiB", f"<= {BUDGET_RSS_MIB:.0f} MiB",
         verdict(mem.rss_mib <= BUDGET_RSS_MIB, "over")),
    ]  # fmt: skip
    print("\nbudget (DESIGN.md)")
    for name, value, budget, mark in rows:
        print(f"  {name:<22}{value:>12}   {budget:<12}{mark}")


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--rounds", type=int, default=6, help="on/off comparison rounds (6)")
    parser.add_argument(
        "--replicas", type=int, default=4, help="server processes per mode compared (4)"
    )
    parser.add_argument(
        "--round-seconds", type=int, default=3, help="seconds per comparison round (3)"
    )
    parser.add_argument(
        "--compare-only", action="store_true", help="only the chain on/off comparison"
    )
    args = parser.parse_args(argv)
    if min(args.duration, args.connections, args.threads, args.rounds, args.replicas) < 1:
        parser.error("--duration, --connections, --threads, --rounds and --replicas must be >= 1")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return args


# The observability chain as it runs in production (logging at INFO as JSON, metrics,
# tracing set up with sampling off), and switched off, to measure what it costs.
CHAIN = {
    "on": {
        "DELINKCIOUS_MIDDLEWARE": "true",
        "DELINKCIOUS_LOG_LEVEL": "INFO",
        "DELINKCIOUS_LOG_FORMAT": "json",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_TRACES_SAMPLER": "always_off",
    },
    "off": {"DELINKCIOUS_MIDDLEWARE": "false", "OTEL_TRACES_EXPORTER": "none"},
}
BUDGET_CHAIN_COST = 0.10


def benchmark(args: argparse.Namespace, wrk: str, workdir: Path) -> None:
    """Measure with the middleware chain on (the default), then compare it with off."""
    if not args.compare_only:
        print("\n=== middleware chain on (the default) ===")
        measure(args, wrk, workdir / "on", CHAIN["on"])
    print(
        f"\n=== chain on vs off: {args.replicas} processes each, {args.rounds} rounds of "
        f"{args.round_seconds} s on every one ==="
    )
    compare(args, wrk, workdir)


@dataclass
class Replica:
    """One of the comparison's servers, with its mode and what was measured on it."""

    mode: str
    server: Server
    lua: Path
    rps: list[float]
    cpu_us: list[float]


def compare(args: argparse.Namespace, wrk: str, workdir: Path) -> None:
    """Several servers per mode up at once, short wrk rounds going round all of them.

    Two sources of noise, each larger than the 10 % being measured. This machine's speed
    drifts by tens of percent from minute to minute: so rounds go round every server in
    turn (starting one further each round), and all see the same drift. And two processes
    of the very same program differ by up to 10 % (where the memory layout puts hot code
    and data): so each mode runs as ``--replicas`` processes, and a mode's figure is the
    median of all its rounds on all of them. Next to requests/s: the server's CPU time per
    request.
    """
    with contextlib.ExitStack() as stack:
        replicas = []
        for number in range(args.replicas):
            for mode in ("on", "off"):
                directory = workdir / f"cmp-{mode}-{number}"
                server = stack.enter_context(running_server(directory, CHAIN[mode]))
                token = login(server.url)
                asyncio.run(load_links(server.url, token, LINK_COUNT))
                lua = write_lua(directory / "auth.lua", token)
                replicas.append(Replica(mode, server, lua, [], []))
                wait_checked(server.url, token)
        for limit in PAGE_SIZES:
            for replica in replicas:
                replica.rps.clear()
                replica.cpu_us.clear()
                url = f"{replica.server.url}/v1/links?limit={limit}"
                run_wrk(wrk, url, replica.lua, args, 2)  # warm up
            for round_number in range(args.rounds):
                start = round_number % len(replicas)
                for replica in replicas[start:] + replicas[:start]:
                    measure_round(args, wrk, replica, limit)
            report_cost(limit, replicas)


def measure_round(args: argparse.Namespace, wrk: str, replica: Replica, limit: int) -> None:
    pid = replica.server.process.pid
    url = f"{replica.server.url}/v1/links?limit={limit}"
    before = cpu_seconds(pid)
    result = parse_wrk(run_wrk(wrk, url, replica.lua, args, args.round_seconds))
    replica.rps.append(result.requests_per_s)
    replica.cpu_us.append((cpu_seconds(pid) - before) / max(result.requests, 1) * 1e6)


def report_cost(limit: int, replicas: list[Replica]) -> None:
    def pooled(mode: str, figure: Literal["rps", "cpu_us"]) -> float:
        return statistics.median(
            value
            for r in replicas
            if r.mode == mode
            for value in (r.rps if figure == "rps" else r.cpu_us)
        )

    on_rps, off_rps = pooled("on", "rps"), pooled("off", "rps")
    on_cpu, off_cpu = pooled("on", "cpu_us"), pooled("off", "cpu_us")
    cost = (off_rps - on_rps) / off_rps
    cpu_cost = (on_cpu - off_cpu) / on_cpu  # the share of each request's CPU the chain takes
    mark = verdict(cost <= BUDGET_CHAIN_COST, "over")
    print(
        f"  limit={limit:<4} on {on_rps:8.1f} req/s   off {off_rps:8.1f} req/s   "
        f"cost {cost * 100:5.1f} %   (budget <= {BUDGET_CHAIN_COST * 100:.0f} %) {mark}"
    )
    print(
        f"             CPU per request: on {on_cpu:.0f} µs, off {off_cpu:.0f} µs "
        f"(the chain: {on_cpu - off_cpu:.0f} µs, {cpu_cost * 100:.1f} %)"
    )
    for mode in ("on", "off"):
        medians = [statistics.median(r.rps) for r in replicas if r.mode == mode]
        print(f"             {mode:<3} per process: {', '.join(f'{m:.0f}' for m in medians)} req/s")


def measure(args: argparse.Namespace, wrk: str, workdir: Path, env: dict[str, str]) -> None:
    """Start the server, load the data, measure, report."""
    with running_server(workdir, env) as server:
        idle = memory(server.process.pid)
        print(
            f"startup: {server.startup_s:.2f} s (spawn to /healthz 200), RSS {idle.rss_mib:.1f} MiB"
        )

        started = time.perf_counter()
        token = login(server.url)
        asyncio.run(load_links(server.url, token, LINK_COUNT))
        took = time.perf_counter() - started
        loaded = memory(server.process.pid)
        print(
            f"loaded 1 user + {LINK_COUNT} links in {took:.1f} s "
            f"({LOAD_CONCURRENCY} in flight), RSS {loaded.rss_mib:.1f} MiB, "
            f"peak {loaded.hwm_mib:.1f} MiB"
        )
        print(f"link checks done {wait_checked(server.url, token):.1f} s later")
        for limit in PAGE_SIZES:
            size = check_page(server.url, token, limit)
            print(f"  GET /v1/links?limit={limit}: {limit} links, {size} bytes")

        lua = write_lua(workdir / "auth.lua", token)
        print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s against {server.url}")
        results = {limit: bench_page(wrk, server, lua, args, limit) for limit in PAGE_SIZES}
        mem = memory(server.process.pid)

        print_table(results)
        print_budget(server.startup_s, results[10].requests_per_s, mem)


def stop_cleanly_on_signals() -> None:
    """Ctrl-C, and SIGTERM as Ctrl-C (even if started with them ignored), so the same
    clean-up (stop the servers, drop the backends) runs."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: signal.raise_signal(signal.SIGINT))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = require_wrk()
    stop_cleanly_on_signals()
    print(
        f"delinkcious list_links benchmark: Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"
    )
    return in_scratch_dir("bench", lambda workdir: benchmark(args, wrk, workdir))


def in_scratch_dir(name: str, body: Callable[[Path], None]) -> int:
    """Run ``body`` in a fresh temporary directory, always removed; the exit code.

    A failure of the benchmark (not of this script) is one line and exit code 1.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"delinkcious-{name}-"))
    try:
        body(workdir)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (BenchmarkError, httpx.HTTPError, subprocess.SubprocessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
