"""The distributed shape itself: services as separate ``delinkcious serve`` processes.

Started one by one here (not through ``up --processes``, which stops everything when one
process dies) so a test can SIGKILL one service during traffic and start it again.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    BIN,
    CHECKER_ENV,
    drop_backends,
    free_port,
    new_username,
    processes_env,
    register_and_login,
)
from tests.e2e.test_social_news import eventually

SERVICES = ("links", "users", "social_graph", "news", "link_checker", "gateway")


class Cluster:
    """One process per service on the shared PostgreSQL, Redis and NATS (isolated names)."""

    def __init__(self, directory: Path) -> None:
        self.suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
        base = free_port(len(SERVICES))
        self.ports = {service: base + i for i, service in enumerate(SERVICES)}
        self.tokens = {service: secrets.token_urlsafe(24) for service in SERVICES}
        self.env = {
            **os.environ,
            **CHECKER_ENV,
            **processes_env(self.suffix),
            "DELINKCIOUS_DATA_DIR": str(directory),
            "DELINKCIOUS_NEWS_REDIS_URL": "redis://127.0.0.1:6379/0",
            "DELINKCIOUS_NATS_URL": "nats://127.0.0.1:4222",
            "DELINKCIOUS_INTERNAL_TOKENS": ",".join(f"{s}={t}" for s, t in self.tokens.items()),
            "DELINKCIOUS_SECRET_KEY": secrets.token_urlsafe(32),
            **{
                f"DELINKCIOUS_{service.upper()}_URL": self.url(service)
                for service in SERVICES
                if service != "gateway"
            },
        }
        self.logs = directory
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, service: str) -> None:
        log = (self.logs / f"{service}.log").open("ab")
        self.processes[service] = subprocess.Popen(
            [str(BIN), "serve", service, "--port", str(self.ports[service])],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url(service)}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.processes[service].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.logs / f"{service}.log").read_text())
            time.sleep(0.05)

    def kill(self, service: str) -> None:
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        for service in SERVICES:
            running.start(service)
        yield running
    finally:
        running.stop()
        asyncio.run(drop_backends(running.suffix, running.env))


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.url("gateway"), timeout=20) as client:
        yield client


def test_no_acknowledged_write_or_event_is_lost_when_a_service_is_killed(
    cluster: Cluster, api: httpx.Client
) -> None:
    author = new_username()
    alice, bob = register_and_login(api, author), register_and_login(api)
    assert api.post("/v1/following", json={"followed": author}, headers=bob).status_code == 201
    acknowledged: list[str] = []
    refused: list[int] = []
    answers: list[str] = []
    lock = threading.Lock()

    def writer(worker: int) -> None:
        with httpx.Client(base_url=cluster.url("gateway"), timeout=20) as client:
            for i in range(20):
                url = f"http://127.0.0.1:9/killed/{worker}/{i}"
                response = client.post("/v1/links", json={"url": url, "title": url}, headers=alice)
                with lock:
                    if response.status_code == 201:
                        acknowledged.append(url)
                    else:
                        refused.append(response.status_code)
                        answers.append(response.text)
                time.sleep(0.1)

    with ThreadPoolExecutor(4) as pool:
        running = [pool.submit(writer, worker) for worker in range(4)]
        time.sleep(0.5)
        cluster.kill("links")
        time.sleep(1.0)
        cluster.start("links")
        for future in running:
            future.result()

    assert acknowledged, "no write went through at all"
    assert refused, "the kill did not happen during traffic"
    # Refused writes are a clear 503, never a 500.
    assert set(refused) <= {503}, list(zip(refused, answers, strict=True))
    stored = _all_urls(api, alice)
    assert set(acknowledged) <= set(stored)
    # Every stored link's event reached bob's news exactly once: none lost in the outbox,
    # none doubled by a redelivery after the kill.

    def news_urls() -> list[str] | None:
        events = api.get("/v1/news", params={"limit": 100}, headers=bob).json()["events"]
        urls = [event["url"] for event in events if event["author"] == author]
        return urls if len(urls) >= len(stored) else None

    urls = eventually(news_urls, timeout=60.0)
    assert urls is not None
    assert sorted(urls) == sorted(stored)


def _all_urls(api: httpx.Client, headers: dict[str, str]) -> list[str]:
    urls: list[str] = []
    token = None
    while True:
        params = {"limit": 100, **({"start_token": token} if token else {})}
        page = api.get("/v1/links", params=params, headers=headers).json()
        urls += [link["url"] for link in page["links"]]
        if not (token := page["next_page_token"]):
            return urls


@pytest.mark.parametrize("service", ["links", "users", "social_graph", "news", "link_checker"])
def test_internal_apis_refuse_callers_without_a_valid_token(cluster: Cluster, service: str) -> None:
    method = {
        "links": "get_links",
        "users": "get_user",
        "social_graph": "get_followers",
        "news": "get_news",
        "link_checker": "check_link",
    }[service]
    url = f"{cluster.url(service)}/internal/v1/{service}/{method}"
    missing = httpx.post(url, json={})
    assert missing.status_code == 401, missing.text
    wrong = httpx.post(url, json={}, headers={"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 403, wrong.text
    assert "not-a-token" not in wrong.text
    # The gateway never serves the internal API to the public.
    assert (
        httpx.post(f"{cluster.url('gateway')}/internal/v1/{service}/{method}", json={}).status_code
        == 404
    )


def test_readyz_names_a_dependency_that_is_down(cluster: Cluster) -> None:
    for service in SERVICES:
        ready = httpx.get(f"{cluster.url(service)}/readyz", timeout=5)
        assert ready.status_code == 200, (service, ready.text)
    cluster.kill("users")

    def readyz(service: str, scope: str = "all") -> httpx.Response:
        url = f"{cluster.url(service)}/readyz"
        return httpx.get(url, params={"scope": scope}, timeout=5)

    try:
        # Callers learn it from their health watch of its replicas (every second).
        gateway = eventually(lambda: (r := readyz("gateway")).status_code == 503 and r, 5)
        assert gateway and gateway.json()["failing"] == ["users service"]
        assert "users service: Unavailable: no ready replica" in gateway.json()["error"]["message"]
        social = eventually(lambda: (r := readyz("social_graph")).status_code == 503 and r, 5)
        assert social and social.json()["failing"] == ["users service"]
        # Still ready for a load balancer (its own stores answer), and alive.
        assert readyz("gateway", "local").status_code == 200
        assert httpx.get(f"{cluster.url('gateway')}/healthz", timeout=5).status_code == 200
    finally:
        cluster.start("users")
    assert eventually(lambda: readyz("gateway").status_code == 200, 5)
