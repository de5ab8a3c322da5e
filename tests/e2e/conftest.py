"""End-to-end fixtures: ``delinkcious up`` as a real process, spoken to over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import nats.js.errors
import pytest
import redis.asyncio as redis

from tests.support.postgres import drop_databases, postgres_url

BIN = Path(sys.executable).parent / "delinkcious"
# Test links point at 127.0.0.1:9, where nothing listens: the link checker running inside
# the server must never send traffic off this machine, not even a DNS query.
CHECKER_ENV = {"DELINKCIOUS_LINK_CHECKER_ALLOWED_NETWORKS": "127.0.0.1/32"}


def free_port(span: int = 1) -> int:
    """A free port with ``span - 1`` free ports after it (``up --processes`` uses six).

    Picked below Linux's ephemeral range (32768+), where the suite's own outgoing
    connections take their ports: a port free now must still be free when a server binds.
    """
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 32_000 - span)
        if all(_free(base + i) for i in range(span)):
            return base
    raise RuntimeError(f"no {span} free ports in a row")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class Server:
    """One ``delinkcious up`` (with ``processes``, ``up --processes``) and its output.

    ``stop`` sends Ctrl-C (SIGINT) like a person would. The output is drained as it comes
    (the processes shape logs a lot), and ``start`` returns once it says where it runs.
    """

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: bool = False
    port: int = 0
    process: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    args: tuple[str, ...] = ()  # more options of `up` (--replicas, --canary)
    ports_used: int = 6  # with --processes: the ports after the gateway's it takes

    def __post_init__(self) -> None:
        self.port = self.port or free_port(self.ports_used if self.processes else 1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def start(self, timeout: float = 60) -> Server:
        argv = [
            str(BIN),
            "up",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]
        self.lines = []
        self.process = subprocess.Popen(
            argv + (["--processes"] if self.processes else []),
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        threading.Thread(target=self._drain, args=(self.process, ready), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"delinkcious up did not start:\n{self.output}")
        return self

    def _drain(self, process: subprocess.Popen[str], ready: threading.Event) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line)
            if " is running at " in line:
                ready.set()

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        time.sleep(0.1)  # let the drain thread take the last lines
        return self.process.returncode, self.output


def processes_env(suffix: str) -> dict[str, str]:
    """Backends of the processes shape, isolated for one test run on the shared servers."""
    env = {
        f"DELINKCIOUS_{service.upper()}_DATABASE_URL": url
        for service, url in database_urls(suffix).items()
    }
    env["DELINKCIOUS_NATS_STREAM"] = f"E2E_{suffix}"
    env["DELINKCIOUS_NATS_SUBJECT_PREFIX"] = f"e2e{suffix}.events"
    env["DELINKCIOUS_NEWS_REDIS_PREFIX"] = f"delinkcious-e2e:{suffix}:"
    return env


def database_urls(suffix: str) -> dict[str, str]:
    base = postgres_url().rsplit("/", 1)[0]
    return {
        service: f"{base}/delinkcious_e2e_{service}_{suffix}"
        for service in ("links", "users", "social_graph")
    }


@pytest.fixture(scope="session", params=["embedded", "processes"])
def shape(request: pytest.FixtureRequest) -> str:
    """Every scenario runs against both shapes of the same code."""
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def server(shape: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    env = {**CHECKER_ENV, **(processes_env(suffix) if shape == "processes" else {})}
    running = Server(tmp_path_factory.mktemp(shape), env=env, processes=shape == "processes")
    try:
        yield running.start()
    finally:
        if running.process is not None:
            running.stop()
        if shape == "processes":
            asyncio.run(drop_backends(suffix, env))


async def drop_backends(suffix: str, env: dict[str, str]) -> None:
    """Drop what a processes-shape run left on the shared servers."""
    await drop_databases(database_urls(suffix).values())
    connection = await nats.connect("nats://127.0.0.1:4222")
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await connection.jetstream().delete_stream(env["DELINKCIOUS_NATS_STREAM"])
    finally:
        await connection.close()
    client = redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = [key async for key in client.scan_iter(env["DELINKCIOUS_NEWS_REDIS_PREFIX"] + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def base_url(server: Server) -> str:
    return server.url


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


def new_username() -> str:
    return f"u{secrets.token_hex(5)}"


def register_and_login(api: httpx.Client, username: str | None = None) -> dict[str, str]:
    """Register a fresh user and return the headers that authenticate as them."""
    username = username or new_username()
    password = "correct horse battery"
    created = api.post(
        "/v1/users",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert created.status_code == 201, created.text
    session = api.post("/v1/sessions", json={"username": username, "password": password})
    assert session.status_code == 201, session.text
    return {"Access-Token": session.json()["access_token"]}


@pytest.fixture
def auth(api: httpx.Client) -> dict[str, str]:
    return register_and_login(api)
