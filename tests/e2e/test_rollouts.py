"""`delinkcious rollout` under load, on `up --processes --prometheus` with two links
replicas: the four strategies of the book, their rollbacks, and canary analysis by a real
Prometheus (healthy: promoted; faulty: aborted; no traffic: held, then failed).

Readers hammer GET /v1/links through the gateway the whole time; which version answered
comes from ``Delinkcious-Served-By``. Full-size figures: ``benchmarks/rollouts.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import (
    BIN,
    CHECKER_ENV,
    Server,
    drop_backends,
    free_port,
    processes_env,
    register_and_login,
)
from tests.e2e.test_social_news import eventually

# Quick analyses: Prometheus scrapes every 2 s; a window holds 4 scrapes.
FAST = ["--pause", "3s", "--window", "8s", "--min-requests", "20", "--deadline", "30s"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    env = {**CHECKER_ENV, **processes_env(suffix), "DELINKCIOUS_VERSION": "1.0.0"}
    server = Server(
        tmp_path_factory.mktemp("rollouts"),
        env=env,
        processes=True,
        args=("--replicas", "links=2", "--prometheus", str(free_port())),
        ports_used=7,
    )
    try:
        yield server.start()
    finally:
        if server.process is not None:
            server.stop()
        asyncio.run(drop_backends(suffix, env))


def rollout(cluster: Server, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "rollout", *args, "--data-dir", str(cluster.data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_rollout(cluster: Server, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN), "rollout", "start", "links", *args, "--data-dir", str(cluster.data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def history(cluster: Server) -> list[dict[str, Any]]:
    path = cluster.data_dir / "rollouts" / "links.json"
    if not path.exists():
        return []
    rollouts: list[dict[str, Any]] = json.loads(path.read_text())["rollouts"]
    return rollouts


def phase_is(cluster: Server, phase: str) -> bool:
    rollouts = history(cluster)
    return bool(rollouts) and rollouts[-1]["phase"] == phase


def links_route(cluster: Server) -> dict[str, Any]:
    route: dict[str, Any] = yaml.safe_load((cluster.data_dir / "routes.yaml").read_text())[
        "routes"
    ]["links"]
    return route


@dataclass
class Load:
    """Six readers of GET /v1/links taking turns over the users; for each user, the
    (status, links version) of their requests in order."""

    base_url: str
    users: list[dict[str, str]]
    seen: list[list[tuple[int, str]]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        self.seen = [[] for _ in self.users]
        for n in range(6):
            thread = threading.Thread(target=self._read, args=(n,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _read(self, n: int) -> None:
        mine = range(n, len(self.users), 6)
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self.stopping.is_set():
                for user in mine:
                    try:
                        response = client.get("/v1/links", headers=self.users[user])
                        header = response.headers.get("delinkcious-served-by", "")
                        version = header.split("links=")[1] if "links=" in header else "-"
                        self.seen[user].append((response.status_code, version))
                    except httpx.HTTPError:
                        self.seen[user].append((0, "-"))

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    @property
    def failed(self) -> int:
        return sum(status != 200 for answers in self.seen for status, _ in answers)

    @property
    def total(self) -> int:
        return sum(len(answers) for answers in self.seen)

    def versions(self, user: int) -> list[str]:
        """The versions one user saw, repeats collapsed: [old, new] flipped once."""
        collapsed: list[str] = []
        for status, version in self.seen[user]:
            if status == 200 and (not collapsed or collapsed[-1] != version):
                collapsed.append(version)
        return collapsed


@pytest.fixture(scope="module")
def readers(cluster: Server) -> list[dict[str, str]]:
    with httpx.Client(base_url=cluster.url, timeout=20) as api:
        return [register_and_login(api) for _ in range(24)]


def test_blue_green_switches_at_once_and_undo_switches_back_failing_nothing(
    cluster: Server, readers: list[dict[str, str]]
) -> None:
    with Load(cluster.url, readers) as load:
        time.sleep(1)
        running = start_rollout(
            cluster, "--strategy", "blue-green", "--version", "1.1.0", "--scale-down-delay", "60s"
        )
        eventually(lambda: phase_is(cluster, "paused"), timeout=60)
        time.sleep(2)
        switched = load.total
        undone = rollout(cluster, "undo", "links")
        assert undone.returncode == 0, undone.stdout + undone.stderr
        assert running.wait(timeout=60) == 0
        time.sleep(2)
    output = running.stdout.read() if running.stdout else ""
    print(f"blue-green: {load.total} reads ({switched} before the undo), {load.failed} failed")
    assert load.failed == 0, output
    for n in range(len(readers)):  # each reader: blue, green, blue — one flip each way
        assert load.versions(n) == ["1.0.0", "1.1.0", "1.0.0"], load.versions(n)
    assert history(cluster)[-1]["phase"] == "undone"
    assert "canary" not in links_route(cluster)


def test_rolling_replaces_every_replica_failing_nothing(
    cluster: Server, readers: list[dict[str, str]]
) -> None:
    with Load(cluster.url, readers) as load:
        time.sleep(1)
        done = rollout(cluster, "start", "links", "--strategy", "rolling", "--version", "1.2.0")
        time.sleep(2)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"rolling: {load.total} reads, {load.failed} failed")
    assert load.failed == 0
    assert all(load.versions(n)[-1] == "1.2.0" for n in range(len(readers)))
    assert len(links_route(cluster)["stable"]) == 2


def test_recreate_has_an_outage_which_is_measured(
    cluster: Server, readers: list[dict[str, str]]
) -> None:
    with Load(cluster.url, readers) as load:
        time.sleep(1)
        started = time.monotonic()
        done = rollout(cluster, "start", "links", "--strategy", "recreate", "--version", "1.3.0")
        took = time.monotonic() - started
        time.sleep(2)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"recreate: {load.failed} of {load.total} reads failed during a {took:.1f} s rollout")
    assert all(load.versions(n)[-1] == "1.3.0" for n in range(len(readers)))


def test_a_faulty_canary_is_aborted_by_its_analysis(
    cluster: Server, readers: list[dict[str, str]]
) -> None:
    with Load(cluster.url, readers) as load:
        time.sleep(1)
        done = rollout(
            cluster,
            "start",
            "links",
            "--strategy",
            "canary",
            "--version",
            "1.4.0-bad",
            "--env",
            "DELINKCIOUS_FAULTS=links.get_links:error=0.5",
            "--steps",
            "25,100",
            *FAST,
        )
        time.sleep(1)
    assert done.returncode == 3, done.stdout + done.stderr  # aborted
    latest = history(cluster)[-1]
    assert latest["phase"] == "aborted"
    verdicts = [e["verdict"] for e in latest["events"] if e.get("verdict")]
    assert verdicts[-1] == "fail" and len(verdicts) <= 2, verdicts  # within two intervals
    assert "canary" not in links_route(cluster)  # no route left behind
    on_canary = sum(v == "1.4.0-bad" for answers in load.seen for _, v in answers)
    print(
        f"faulty canary: aborted after {len(verdicts)} analysis; {load.failed} of "
        f"{load.total} reads failed, {on_canary} answered by the canary"
    )
    assert load.failed <= load.total * 0.25  # bounded by the canary's share


def test_a_healthy_canary_is_promoted_step_by_step(
    cluster: Server, readers: list[dict[str, str]]
) -> None:
    with Load(cluster.url, readers):
        done = rollout(
            cluster,
            "start",
            "links",
            "--strategy",
            "canary",
            "--version",
            "1.5.0",
            "--steps",
            "25,50,100",
            *FAST,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    latest = history(cluster)[-1]
    assert latest["phase"] == "succeeded"
    verdicts = [e["verdict"] for e in latest["events"] if e.get("verdict")]
    # One pass per step below 100 % (an early one may wait for traffic: inconclusive).
    assert [v for v in verdicts if v != "inconclusive"] == ["pass", "pass"], verdicts
    assert "canary" not in links_route(cluster)


def test_a_canary_without_traffic_is_never_promoted(cluster: Server) -> None:
    done = rollout(
        cluster,
        "start",
        "links",
        "--strategy",
        "canary",
        "--version",
        "1.6.0",
        "--steps",
        "50,100",
        "--pause",
        "1s",
        "--window",
        "8s",
        "--min-requests",
        "20",
        "--deadline",
        "6s",
    )
    assert done.returncode == 3, done.stdout + done.stderr
    latest = history(cluster)[-1]
    verdicts = [e["verdict"] for e in latest["events"] if e.get("verdict")]
    assert set(verdicts) == {"inconclusive"} and len(verdicts) >= 2
    assert latest["phase"] == "aborted"
    assert "no verdict within 6 s" in done.stdout


def test_a_rollout_survives_a_restart_of_its_command(
    cluster: Server, readers: list[dict[str, str]]
) -> None:
    with Load(cluster.url, readers):
        running = start_rollout(
            cluster,
            "--strategy",
            "canary",
            "--version",
            "1.7.0",
            "--steps",
            "25,100",
            "--pause",
            "30s",
            "--no-analysis",
        )
        eventually(lambda: bool(history(cluster)) and history(cluster)[-1]["weight"] == 2500, 60)
        running.send_signal(signal.SIGKILL)
        running.wait()
        status = rollout(cluster, "status", "links")
        assert "1.5.0 -> 1.7.0, progressing, canary weight 25 %" in status.stdout
        promoted = rollout(cluster, "promote", "links")  # nothing drives it: it drives it
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert history(cluster)[-1]["phase"] == "succeeded"
    listed = rollout(cluster, "history", "links").stdout
    assert "canary 1.5.0 -> 1.7.0: succeeded" in listed
    assert "recreate 1.2.0 -> 1.3.0: succeeded" in listed
    assert Path(cluster.data_dir / "rollouts" / "links.lock").exists() is False
