"""End-to-end fixtures: ``delinkcious up`` as a real process, spoken to over real HTTP."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent / "delinkcious"
# Test links point at 127.0.0.1:9, where nothing listens: the link checker running inside
# the server must never send traffic off this machine, not even a DNS query.
CHECKER_ENV = {"DELINKCIOUS_LINK_CHECKER_ALLOWED_NETWORKS": "127.0.0.1/32"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One ``delinkcious up`` process; ``stop`` sends Ctrl-C (SIGINT) like a person would."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.process = subprocess.Popen(
            [str(BIN), "up", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"delinkcious up exited early:\n{self.process.stdout.read()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("delinkcious up did not become healthy within 30 s")

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            output, _ = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return self.process.returncode, output


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("delinkcious"), env=CHECKER_ENV).start()
    yield running
    running.stop()


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
