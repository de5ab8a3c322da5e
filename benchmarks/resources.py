"""Measure each service's memory and CPU under a mixed load, for Kubernetes resource blocks.

Starts ``delinkcious up --processes`` (six services, one process each) on free ports with
backends of its own on the shared PostgreSQL, Redis and NATS (databases, stream, subjects
and key prefix named for this run, all dropped at the end), and for each service process:

- memory: RSS at idle after start; peak RSS under load, sampled every 100 ms (VmRSS) and
  as the kernel's high-water mark at the end (VmHWM: the whole life, start-up included);
- CPU: user + system seconds per 1,000 gateway requests (the background work those
  requests set off, link checks and news fan-out, included) and average cores during load.

The load is wrk with a generated Lua script: a fixed, printed mix of list, news, add and
edit requests spread over a few users who all follow each other. After it, a burst of
logins (argon2: the users service's memory peak). Then it prints a suggested
``resources:`` block per service. Figures are printed, never asserted.

    .venv/bin/python benchmarks/resources.py [--seconds 30] [--connections 16]
        [--threads 2] [--users 4] [--target-rps 100] [--spread]

Where things run (2+ CPUs, unless ``--spread``): the supervisor and its six services on
CPU 0, wrk, this script and the link target on the others; PostgreSQL, Redis and NATS wherever the
scheduler puts them. Saved links point at a tiny HTTP server of this script on
127.0.0.1 that answers 200, so link checks succeed quickly, as most real ones do, and
nothing leaves the machine (``DELINKCIOUS_LINK_CHECKER_ALLOWED_NETWORKS=127.0.0.1/32``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import random
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import httpx
import nats
import nats.errors
import nats.js.errors
import redis.asyncio as redis
from prometheus_client.parser import text_string_to_metric_families

from delinkcious.registry import NAMES
from delinkcious.registry import SERVICES as REGISTRY
from list_links import (
    BIN,
    HOST,
    SERVER_PIN,
    WRK_PIN,
    BenchmarkError,
    WrkResult,
    cpu_seconds,
    in_scratch_dir,
    interrupt,
    local_client,
    memory,
    parse_wrk,
    require_wrk,
    stop_cleanly_on_signals,
)

SERVICES = NAMES
# The databases `up --processes` gives PostgreSQL (news keeps its feeds in Redis there).
DATABASES = tuple(s.name for s in REGISTRY if s.database and not s.redis)
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"

PASSWORD = "correct horse battery staple"
SEED_LINKS_PER_USER = 25
SAMPLE_INTERVAL_S = 0.1
IDLE_SECONDS = 5.0  # after start: idle RSS, and the idle CPU every service burns anyway
WARMUP_SECONDS = 3
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
QUIET_TIMEOUT_S = 60.0
QUIET_MARGIN_CORES = 0.03  # "quiet": all six together within this of their idle CPU rate
LOGINS = 24  # the login burst after the load: argon2's memory, two hashes at a time
LOGINS_IN_FLIGHT = 8

# One cycle of the mix, per wrk thread; request kinds interleaved so any second of the run
# sees all of them. 9 list + 8 news + 2 add + 1 edit = 45 / 40 / 10 / 5 %.
MIX = (
    "list", "news", "list", "add", "news", "list", "news", "list", "edit", "news",
    "list", "news", "list", "add", "news", "list", "news", "list", "news", "list",
)  # fmt: skip
KINDS = {
    "list": "GET /v1/links?limit=10",
    "news": "GET /v1/news",
    "add": "POST /v1/links (new url)",
    "edit": "PUT /v1/links (new title, own seeded link)",
}

# Memory: limit = request = peak RSS x 1.25, rounded up to 16 MiB, at least 64 MiB. A
# memory limit is a hard wall (the OOM killer), and 30 s on a fresh database under-states
# a long-running process: allocator fragmentation, bigger pages of data, connection pools
# filling, a GC cycle landing at the peak. A quarter on top covers that drift; 16 MiB steps
# keep the numbers tidy; the floor keeps an interpreter with our imports startable.
MEMORY_HEADROOM = 1.25
MEMORY_STEP_MIB = 16
MEMORY_FLOOR_MIB = 64
# CPU: request = the cores the measured CPU per request needs at the target rate, rounded
# up to 10 m, at least 50 m (the scheduler's share for a service that is mostly idle).
CPU_STEP_M = 10
CPU_FLOOR_M = 50


@dataclass
class Process:
    """One service process of the supervisor, and what was measured on it."""

    service: str
    pid: int
    idle_rss_mib: float = 0.0
    idle_cpu_s: float = 0.0  # CPU seconds over the idle window
    # (seconds into the phase, VmRSS MiB), by phase: "load" (load and tail), "logins"
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    cpu_start: float = 0.0
    cpu_load_end: float = 0.0
    cpu_quiet: float = 0.0
    end_rss_mib: float = 0.0
    hwm_mib: float = 0.0

    def peak_rss_mib(self, phase: str = "load") -> float:
        return max(rss for _, rss in self.samples[phase])


@dataclass
class Run:
    """A running ``up --processes``: the supervisor, its services, the gateway's url."""

    supervisor: subprocess.Popen[bytes]
    port: int
    log: Path
    processes: list[Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


# --- backends, isolated per run ------------------------------------------------------------


def isolated_env(suffix: str, target_host: str) -> dict[str, str]:
    """The environment of ``up --processes``: its own databases, stream, subjects, prefix.

    The per-user link cap is lifted: a long run adds thousands of links per user, and a
    403 at the cap would be an error of the benchmark, not of the system.
    """
    env = {
        f"DELINKCIOUS_{service.upper()}_DATABASE_URL": database_url(service, suffix)
        for service in DATABASES
    }
    env |= {
        "DELINKCIOUS_NEWS_REDIS_URL": REDIS_URL,
        "DELINKCIOUS_NATS_URL": NATS_URL,
        "DELINKCIOUS_NATS_STREAM": f"BENCH_{suffix}",
        "DELINKCIOUS_NATS_SUBJECT_PREFIX": f"bench{suffix}.events",
        "DELINKCIOUS_NEWS_REDIS_PREFIX": f"delinkcious-bench:{suffix}:",
        "DELINKCIOUS_LINK_CHECKER_ALLOWED_NETWORKS": f"{target_host}/32",
        "DELINKCIOUS_MAX_LINKS_PER_USER": "1000000",
    }
    return env


def database_url(service: str, suffix: str) -> str:
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/delinkcious_bench_{service}_{suffix}"


async def drop_backends(suffix: str, env: dict[str, str]) -> None:
    """Drop what the run made on the shared servers; each step even if another failed."""
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
        try:
            for service in DATABASES:
                name = f"delinkcious_bench_{service}_{suffix}"
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    with contextlib.suppress(OSError, nats.errors.Error):
        connection = await nats.connect(NATS_URL)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await connection.jetstream().delete_stream(env["DELINKCIOUS_NATS_STREAM"])
        finally:
            await connection.close()
    client = redis.from_url(REDIS_URL)
    try:
        prefix = env["DELINKCIOUS_NEWS_REDIS_PREFIX"]
        keys = [key async for key in client.scan_iter(prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# --- the link target: saved links point here ----------------------------------------------


class _Ok(BaseHTTPRequestHandler):
    """200 to HEAD and GET, no body, connection closed (as a new site would be)."""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def link_target() -> Iterator[str]:
    """A loopback HTTP server answering 200; yields its base url.

    A check of ``127.0.0.1:9`` (nothing listening) is refused and retried twice with
    backoff: 1.5 s a check, 16 at once, so about 10 checks/s, a backlog under load, and a
    checker whose CPU is counted for connects that fail. Real links mostly answer.
    """
    server = ThreadingHTTPServer((HOST, 0), _Ok)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- starting and stopping ----------------------------------------------------------------


def free_ports(span: int) -> int:
    """The first of ``span`` consecutive free ports, below the ephemeral range (32768+)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 32_000 - span)
        if all(_free(base + i) for i in range(span)):
            return base
    raise BenchmarkError(f"no {span} free ports in a row")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def running(workdir: Path, env: dict[str, str], pin: list[str]) -> Iterator[Run]:
    """``up --processes`` (under ``pin``), ready and its six children found; always stopped."""
    port = free_ports(len(SERVICES))
    log = workdir / "up.log"
    command = [
        *pin, sys.executable, str(BIN), "up", "--processes",
        "--port", str(port), "--data-dir", str(workdir / "data"),
    ]  # fmt: skip
    with log.open("wb") as out:
        supervisor = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,  # Ctrl-C reaches only us; we stop it ourselves
        )
    run = Run(supervisor, port, log)
    try:
        started = time.monotonic()
        wait_ready(run)
        print(f"up --processes ready in {time.monotonic() - started:.1f} s on {run.url}")
        run.processes = find_children(supervisor.pid)
        yield run
    finally:
        stop(run)


def wait_ready(run: Run) -> None:
    """Until the supervisor says every service answered ``/healthz``."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while b" is running at " not in run.log.read_bytes():
        if run.supervisor.poll() is not None or time.monotonic() > deadline:
            tail = run.log.read_text(errors="replace")[-4000:]
            raise BenchmarkError(f"up --processes did not start; its output ends:\n{tail}")
        time.sleep(0.1)


def find_children(supervisor: int) -> list[Process]:
    """The supervisor's children, by the service named after ``serve`` in their argv."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if ppid == supervisor and b"serve" in argv:
                found[argv[argv.index(b"serve") + 1].decode()] = int(entry.name)
    missing = set(SERVICES) - found.keys()
    if missing:
        raise BenchmarkError(f"no process found for {', '.join(sorted(missing))}")
    return [Process(service, found[service]) for service in SERVICES]


def stop(run: Run) -> None:
    """Ctrl-C the supervisor (it stops the six); killed if it hangs, they die with it."""
    interrupt(run.supervisor, "up --processes", STOP_TIMEOUT_S)


# --- data -----------------------------------------------------------------------------------


def seed(base_url: str, target: str, users: int) -> list[tuple[str, list[str]]]:
    """Register and log in ``users`` users who all follow each other, each with some links.

    Returns each user's token and the urls of their links (what the edits change).
    """
    names = [f"bench{i}" for i in range(users)]
    seeded: list[tuple[str, list[str]]] = []
    with local_client(base_url) as client:
        for name in names:
            account = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
            expect(client.post("/v1/users", json=account), 201)
            session = client.post("/v1/sessions", json={"username": name, "password": PASSWORD})
            token = str(expect(session, 201).json()["access_token"])
            seeded.append((token, []))
        for (token, _), name in zip(seeded, names, strict=True):
            headers = {"Access-Token": token}
            for other in names:
                if other != name:
                    follow = client.post("/v1/following", json={"followed": other}, headers=headers)
                    expect(follow, 201)
        for (token, urls), name in zip(seeded, names, strict=True):
            for i in range(SEED_LINKS_PER_USER):
                url = f"{target}/seed/{name}/{i}"
                body = {"url": url, "title": f"Seed {i} of {name}", "tags": ["seed", f"s{i % 5}"]}
                expect(client.post("/v1/links", json=body, headers={"Access-Token": token}), 201)
                urls.append(url)
    return seeded


def expect(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise BenchmarkError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:200]}"
        )
    return response


# --- the load -------------------------------------------------------------------------------


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_mix_lua(path: Path, seeded: list[tuple[str, list[str]]], target: str) -> Path:
    """The wrk script of the mix: tokens in the file, not in ``ps``; urls unique per run.

    Request ``n`` of a thread is ``MIX[n % 20]``, by user ``(n + n // 20) % users``, so every
    user sends every kind. Added urls are ``target/load/<nonce>/<thread>/<n>``, the nonce
    (a wrk argument) differing per wrk run, so an add is never a 409.
    """
    tokens = ", ".join(lua_string(token) for token, _ in seeded)
    owned = ", ".join("{" + ", ".join(map(lua_string, urls)) + "}" for _, urls in seeded)
    plan = ", ".join(lua_string(kind) for kind in MIX)
    path.write_text(
        f"""-- generated by benchmarks/resources.py
local tokens = {{{tokens}}}
local owned = {{{owned}}}
local plan = {{{plan}}}
local target = {lua_string(target + "/load/")}
local threads = {{}}
local nonce, n = "", 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  nonce = args[1]
end

function request()
  local kind = plan[n % #plan + 1]
  local user = (n + math.floor(n / #plan)) % #tokens + 1
  n = n + 1
  local headers = {{["Access-Token"] = tokens[user]}}
  if kind == "list" then
    return wrk.format("GET", "/v1/links?limit=10", headers)
  elseif kind == "news" then
    return wrk.format("GET", "/v1/news", headers)
  end
  headers["Content-Type"] = "application/json"
  if kind == "add" then
    local url = target .. nonce .. "/" .. tid .. "/" .. n
    local body = '{{"url": "' .. url .. '", "title": "Load link ' .. n
      .. '", "description": "added under load", "tags": ["load", "t' .. n % 7 .. '"]}}'
    return wrk.format("POST", "/v1/links", headers, body)
  end
  local mine = owned[user]
  local body = '{{"url": "' .. mine[n % #mine + 1] .. '", "title": "Edited ' .. n .. '"}}'
  return wrk.format("PUT", "/v1/links", headers, body)
end
"""
    )
    return path


def run_wrk(wrk: str, url: str, lua: Path, args: argparse.Namespace, seconds: int) -> str:
    """``wrk --latency`` (pinned) for ``seconds``; its output."""
    command = [
        *args.wrk_pin, wrk, "--latency", "-t", str(args.threads), "-c", str(args.connections),
        "-d", f"{seconds}s", "-s", str(lua), url, "--", secrets.token_hex(4),
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise BenchmarkError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def gateway_counts(base_url: str) -> dict[tuple[str, str, str], float]:
    """``delinkcious_http_requests_total`` of the gateway by (method, route, status), /v1 only."""
    with local_client(base_url) as client:
        text = client.get("/metrics").raise_for_status().text
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            route = sample.labels.get("route", "")
            if sample.name == "delinkcious_http_requests_total" and route.startswith("/v1"):
                key = (sample.labels["method"], route, sample.labels["status"])
                counts[key] = sample.value
    return counts


# --- sampling -------------------------------------------------------------------------------


def status_rss_mib(pid: int) -> float:
    """VmRSS alone (``memory`` reads VmHWM too): the cheapest read, taken 10 times a second."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchmarkError(f"no VmRSS for pid {pid}")


@contextlib.contextmanager
def sampling(processes: list[Process], phase: str) -> Iterator[None]:
    """VmRSS of every process every 100 ms, in a thread, while the block runs."""
    done = threading.Event()
    series = {process.pid: process.samples.setdefault(phase, []) for process in processes}

    def sample() -> None:
        started = time.monotonic()
        while not done.is_set():
            now = time.monotonic() - started
            for process in processes:
                series[process.pid].append((now, status_rss_mib(process.pid)))
            done.wait(SAMPLE_INTERVAL_S)

    thread = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def total_cpu(processes: list[Process]) -> float:
    return sum(cpu_seconds(process.pid) for process in processes)


def wait_quiet(processes: list[Process], idle_cores: float) -> float:
    """Wait until the six together burn no more than at idle (+ a margin); the seconds taken.

    What the load set off (link checks, ``link.checked`` back into links, news fan-out,
    outbox relay) runs on after wrk stops; it belongs to the load's CPU bill.
    """
    started = time.monotonic()
    calm = 0
    previous, at = total_cpu(processes), time.monotonic()
    while time.monotonic() - started < QUIET_TIMEOUT_S:
        time.sleep(0.5)
        now_cpu, now = total_cpu(processes), time.monotonic()
        rate = (now_cpu - previous) / (now - at)
        previous, at = now_cpu, now
        calm = calm + 1 if rate <= idle_cores + QUIET_MARGIN_CORES else 0
        if calm >= 2:
            return time.monotonic() - started
    print(f"  (still busy after {QUIET_TIMEOUT_S:.0f} s; counting up to here)")
    return time.monotonic() - started


# --- the benchmark --------------------------------------------------------------------------


@dataclass
class LoadResult:
    """The measured run: what wrk saw, and what the gateway counted by route and status."""

    wrk: WrkResult
    seconds: float  # wall time of the measured wrk run
    requests: float  # /v1 requests the gateway counted in it
    by_kind: dict[tuple[str, str, str], float]
    tail_s: float
    wrk_output: str


def benchmark(args: argparse.Namespace, wrk: str, workdir: Path) -> None:
    """Link target, isolated backends, ``up --processes``: measure; always clean up."""
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    with link_target() as target:
        env = isolated_env(suffix, HOST)
        try:
            with running(workdir, env, args.server_pin) as run:
                measure(args, wrk, workdir, run, target)
        finally:
            asyncio.run(drop_backends(suffix, env))
            print(f"dropped databases, NATS stream and Redis keys of run {suffix}")


def measure(args: argparse.Namespace, wrk: str, workdir: Path, run: Run, target: str) -> None:
    """Idle, seed, warm up, load, logins; then the report.

    Each step waits until the background work of the one before has finished, so no
    step's CPU is counted in another's.
    """
    processes = run.processes
    idle_cores = measure_idle(processes)

    started = time.monotonic()
    seeded = seed(run.url, target, args.users)
    took = time.monotonic() - started
    quiet = wait_quiet(processes, idle_cores)
    print(
        f"seeded {args.users} users (all following each other) and "
        f"{args.users * SEED_LINKS_PER_USER} links in {took:.1f} s; quiet {quiet:.1f} s later"
    )

    lua = write_mix_lua(workdir / "mix.lua", seeded, target)
    print_mix(args)
    print(f"warm-up {WARMUP_SECONDS} s ...", flush=True)
    run_wrk(wrk, run.url, lua, args, WARMUP_SECONDS)
    wait_quiet(processes, idle_cores)

    print(f"load {args.seconds} s ...", flush=True)
    result = drive(args, wrk, run, lua, idle_cores)
    print_load(result)
    logins = login_burst(run, args.users)
    for process in processes:
        process.hwm_mib = memory(process.pid).hwm_mib
    print_processes(processes, result)
    print_logins(logins)
    print_supervisor(run)
    print_suggestions(processes, result, args.target_rps)


def measure_idle(processes: list[Process]) -> float:
    """Idle RSS after start, and the CPU the services burn doing nothing (timers, polls)."""
    before = {process.pid: cpu_seconds(process.pid) for process in processes}
    time.sleep(IDLE_SECONDS)
    for process in processes:
        process.idle_rss_mib = memory(process.pid).rss_mib
        process.idle_cpu_s = cpu_seconds(process.pid) - before[process.pid]
    idle_cores = sum(process.idle_cpu_s for process in processes) / IDLE_SECONDS
    print(f"idle {IDLE_SECONDS:.0f} s: the six together use {idle_cores * 1000:.0f} m CPU")
    return idle_cores


def drive(args: argparse.Namespace, wrk: str, run: Run, lua: Path, idle_cores: float) -> LoadResult:
    """The measured run: CPU before, RSS sampled throughout, CPU at the end and once quiet."""
    processes = run.processes
    counts_before = gateway_counts(run.url)
    with sampling(processes, "load"):
        for process in processes:
            process.cpu_start = cpu_seconds(process.pid)
        started = time.monotonic()
        output = run_wrk(wrk, run.url, lua, args, args.seconds)
        seconds = time.monotonic() - started
        for process in processes:
            process.cpu_load_end = cpu_seconds(process.pid)
        tail_s = wait_quiet(processes, idle_cores)
        for process in processes:
            process.cpu_quiet = cpu_seconds(process.pid)
    for process in processes:
        process.end_rss_mib = memory(process.pid).rss_mib
    counts_after = gateway_counts(run.url)
    by_kind = {
        key: value - counts_before.get(key, 0.0)
        for key, value in counts_after.items()
        if value - counts_before.get(key, 0.0) > 0
    }
    # The two /metrics scrapes fall outside the window; everything counted is wrk's.
    return LoadResult(parse_wrk(output), seconds, sum(by_kind.values()), by_kind, tail_s, output)


@dataclass
class LoginResult:
    """The login burst, as the users service saw it."""

    logins: int
    seconds: float
    users_cpu_s: float
    users_rss_before_mib: float
    users_peak_mib: float
    users_rss_after_mib: float


def login_burst(run: Run, users: int) -> LoginResult:
    """A login storm after the load: what argon2 costs the users service.

    The mix has no logins (sessions last 30 days, so they are rare), but each one hashes
    with argon2id (19 MiB, two at a time in the service): the users service's memory
    limit must hold a storm of them, whatever its steady load.
    """
    users_process = next(p for p in run.processes if p.service == "users")
    names = [f"bench{i % users}" for i in range(LOGINS)]
    before_rss = memory(users_process.pid).rss_mib
    before_cpu = cpu_seconds(users_process.pid)
    started = time.monotonic()
    with sampling(run.processes, "logins"):
        asyncio.run(log_in_all(run.url, names))
    return LoginResult(
        logins=LOGINS,
        seconds=time.monotonic() - started,
        users_cpu_s=cpu_seconds(users_process.pid) - before_cpu,
        users_rss_before_mib=before_rss,
        users_peak_mib=users_process.peak_rss_mib("logins"),
        users_rss_after_mib=memory(users_process.pid).rss_mib,
    )


async def log_in_all(base_url: str, names: list[str]) -> None:
    gate = asyncio.Semaphore(LOGINS_IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=60) as client:

        async def log_in(name: str) -> None:
            async with gate:
                response = await client.post(
                    "/v1/sessions", json={"username": name, "password": PASSWORD}
                )
            expect(response, 201)

        async with asyncio.TaskGroup() as group:
            for name in names:
                group.create_task(log_in(name))


# --- report ---------------------------------------------------------------------------------


def print_mix(args: argparse.Namespace) -> None:
    print(
        f"mix per {len(MIX)} requests, {args.users} users, wrk -t{args.threads} "
        f"-c{args.connections} (closed loop, no think time):"
    )
    for kind, what in KINDS.items():
        share = MIX.count(kind)
        print(f"  {share:>2} x {what:<44}{share / len(MIX) * 100:>5.0f} %")


def print_load(result: LoadResult) -> None:
    w = result.wrk
    errors = w.non_2xx + w.socket_errors
    print(
        f"\nwrk: {w.requests} requests in {result.seconds:.1f} s, {w.requests_per_s:.1f} req/s, "
        f"p50 {w.p50_ms:.1f} ms, p99 {w.p99_ms:.1f} ms, errors {errors} "
        f"(non-2xx {w.non_2xx}, socket {w.socket_errors})"
    )
    for line in result.wrk_output.splitlines():
        if "Socket errors" in line:
            print(f"  wrk: {line.strip()}")
    if errors:
        print(
            "!!! wrk saw errors: the system was overloaded or failing; CPU per request "
            "below includes work on requests that never completed !!!"
        )
    print(f"gateway counted {result.requests:.0f} /v1 requests:")
    for (method, route, status), count in sorted(result.by_kind.items()):
        share = count / result.requests * 100
        print(f"  {method:<5}{route:<16}{status:>5}{count:>9.0f}{share:>7.1f} %")
    print(f"background work went on {result.tail_s:.1f} s after wrk stopped (counted below)")


def print_processes(processes: list[Process], result: LoadResult) -> None:
    """One row per service: memory idle / peak / end, CPU per 1,000 requests, cores."""
    thousands = result.requests / 1000
    print(
        f"\n{'service':<14}{'idle RSS':>9}{'peak RSS':>9}{'VmHWM':>8}{'end RSS':>8}"
        f"{'drift':>7}{'idle m':>7}{'CPU s':>7}{'tail s':>7}{'s/1k req':>9}{'cores':>7}"
    )
    print(f"{'':<14}{'MiB':>9}{'MiB':>9}{'MiB':>8}{'MiB':>8}{'MiB':>7}{'':>7}{'load':>7}")
    for p in processes:
        load_cpu = p.cpu_load_end - p.cpu_start
        tail_cpu = p.cpu_quiet - p.cpu_load_end
        print(
            f"{p.service:<14}{p.idle_rss_mib:>9.1f}{p.peak_rss_mib():>9.1f}{p.hwm_mib:>8.1f}"
            f"{p.end_rss_mib:>8.1f}{drift_mib(p, result.seconds):>+7.1f}"
            f"{p.idle_cpu_s / IDLE_SECONDS * 1000:>7.0f}{load_cpu:>7.2f}{tail_cpu:>7.2f}"
            f"{(load_cpu + tail_cpu) / thousands:>9.3f}{load_cpu / result.seconds:>7.3f}"
        )
    total_load = sum(p.cpu_load_end - p.cpu_start for p in processes)
    total_all = sum(p.cpu_quiet - p.cpu_start for p in processes)
    print(
        f"{'all six':<14}{sum(p.idle_rss_mib for p in processes):>9.1f}"
        f"{sum(p.peak_rss_mib() for p in processes):>9.1f}{sum(p.hwm_mib for p in processes):>8.1f}"
        f"{sum(p.end_rss_mib for p in processes):>8.1f}{'':>7}{'':>7}{total_load:>7.2f}"
        f"{total_all - total_load:>7.2f}{total_all / thousands:>9.3f}"
        f"{total_load / result.seconds:>7.3f}"
    )
    print(
        "peak RSS: highest VmRSS, sampled every 100 ms in load and tail\n"
        "VmHWM: the kernel's peak over the whole life (start-up, seeding, logins included)\n"
        "drift: mean VmRSS of the last 3 s of load minus that of the first 3 s\n"
        "idle m: millicores at idle; CPU s: in load and in the tail after it\n"
        "s/1k req: CPU seconds (load + tail) per 1,000 gateway requests; cores: mean in load"
    )


def print_logins(result: LoginResult) -> None:
    print(
        f"login burst: {result.logins} logins, {LOGINS_IN_FLIGHT} in flight, in "
        f"{result.seconds:.1f} s; users service {result.users_cpu_s / result.logins * 1000:.0f} "
        f"ms CPU a login, RSS {result.users_rss_before_mib:.1f} -> peak "
        f"{result.users_peak_mib:.1f} MiB, {result.users_rss_after_mib:.1f} MiB after"
    )


def drift_mib(process: Process, seconds: float) -> float:
    """How much RSS grew from the start of the load to its end (3 s averages)."""
    first = [rss for t, rss in process.samples["load"] if t < 3]
    last = [rss for t, rss in process.samples["load"] if seconds - 3 <= t < seconds]
    if not first or not last:
        return 0.0
    return sum(last) / len(last) - sum(first) / len(first)


def print_supervisor(run: Run) -> None:
    """The supervisor is not deployed, but it shares CPU 0 here: show what it took."""
    mem = memory(run.supervisor.pid)
    print(
        f"supervisor (not deployed; pumps the six's logs): RSS {mem.rss_mib:.1f} MiB, "
        f"{cpu_seconds(run.supervisor.pid):.2f} CPU s in its whole life"
    )


def memory_mib(peak_mib: float) -> int:
    steps = math.ceil(peak_mib * MEMORY_HEADROOM / MEMORY_STEP_MIB)
    return max(MEMORY_FLOOR_MIB, steps * MEMORY_STEP_MIB)


def cpu_millicores(cpu_s_per_1k: float, target_rps: float) -> int:
    millicores = cpu_s_per_1k * target_rps  # (s / 1000 req) x (req / s) x 1000 m
    return max(CPU_FLOOR_M, math.ceil(millicores / CPU_STEP_M) * CPU_STEP_M)


def print_suggestions(processes: list[Process], result: LoadResult, target_rps: float) -> None:
    """A ``resources:`` block per service, and how each number was reached."""
    thousands = result.requests / 1000
    rate = result.requests / result.seconds
    print(
        f"\nsuggested resources, one replica of each service per {target_rps:.0f} gateway req/s "
        f"of this mix (measured: {rate:.0f} req/s)\n"
        f"  memory request = limit = max(peak RSS, VmHWM) x {MEMORY_HEADROOM}, up to "
        f"{MEMORY_STEP_MIB} MiB, >= {MEMORY_FLOOR_MIB} MiB\n"
        f"  cpu request = CPU s per 1k requests x {target_rps:.0f} req/s, up to {CPU_STEP_M} m, "
        f">= {CPU_FLOOR_M} m; no cpu limit (throttling adds latency, not safety)"
    )
    for p in processes:
        peak = max(p.peak_rss_mib(), p.hwm_mib)  # VmHWM: logins and start-up included
        per_1k = (p.cpu_quiet - p.cpu_start) / thousands
        mem, cpu = memory_mib(peak), cpu_millicores(per_1k, target_rps)
        print(
            f"  {p.service}:  # peak {peak:.0f} MiB, {per_1k * target_rps:.0f} m at target\n"
            f"    resources:\n"
            f"      requests: {{cpu: {cpu}m, memory: {mem}Mi}}\n"
            f"      limits: {{memory: {mem}Mi}}"
        )


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30, help="measured load, seconds (30)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--users", type=int, default=4, help="users in the mix (4)")
    parser.add_argument(
        "--target-rps", type=float, default=100, help="gateway req/s per replica to size for (100)"
    )
    parser.add_argument(
        "--spread", action="store_true", help="pin nothing: services and wrk share every CPU"
    )
    args = parser.parse_args(argv)
    if args.seconds < 7:
        parser.error("--seconds must be at least 7 (the drift compares the first and last 3 s)")
    if args.threads < 1 or args.connections < args.threads:
        parser.error("--threads must be at least 1, --connections at least --threads")
    if args.users < 2 or args.target_rps <= 0:
        parser.error("--users must be at least 2 (they follow each other), --target-rps > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = require_wrk()
    stop_cleanly_on_signals()
    cpus = os.cpu_count() or 1
    args.server_pin, args.wrk_pin = ([], []) if args.spread else (SERVER_PIN, WRK_PIN)
    if args.wrk_pin:  # this script (its sampler, the link target) stays off the services' CPU
        os.sched_setaffinity(0, range(1, cpus))
    where = "services on CPU 0, wrk and this script on the others" if args.wrk_pin else "unpinned"
    print(
        f"delinkcious resources benchmark: Python {platform.python_version()}, "
        f"{cpus} CPUs, {platform.system()} {platform.machine()}; {where}"
    )
    return in_scratch_dir("resources", lambda workdir: benchmark(args, wrk, workdir))


if __name__ == "__main__":
    sys.exit(main())
