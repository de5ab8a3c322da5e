"""``delinkcious serve`` and ``migrate`` as programs: configuration errors, waiting for
dependencies, migrations, and draining requests in flight on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect

from delinkcious.platform.db import create_engine
from tests.e2e.conftest import BIN, free_port
from tests.support.postgres import drop_databases, postgres_url

TOKENS = "gateway=g-secret-0123456789,links=l-secret-0123456789"
NATS = "nats://127.0.0.1:4222"


def delinkcious(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("args", "env", "reason"),
    [
        (["serve", "links"], {}, "DELINKCIOUS_INTERNAL_TOKENS is required"),
        (
            ["serve", "users"],
            {"DELINKCIOUS_INTERNAL_TOKENS": TOKENS},
            "DELINKCIOUS_INTERNAL_TOKENS has no entry for users",
        ),
        (
            ["serve", "links"],
            {"DELINKCIOUS_INTERNAL_TOKENS": "no-equals-sign"},
            "DELINKCIOUS_INTERNAL_TOKENS",
        ),
        (
            ["serve", "gateway"],
            {"DELINKCIOUS_INTERNAL_TOKENS": TOKENS},
            "DELINKCIOUS_LINKS_URL is required: gateway calls links",
        ),
        (
            ["serve", "links"],
            {"DELINKCIOUS_INTERNAL_TOKENS": TOKENS},
            "DELINKCIOUS_NATS_URL is required",
        ),
        (
            ["serve", "links"],
            {"DELINKCIOUS_INTERNAL_TOKENS": TOKENS, "DELINKCIOUS_NATS_URL": NATS},
            "DELINKCIOUS_LINKS_DATABASE_URL is required",
        ),
        (
            ["serve", "news"],
            {
                "DELINKCIOUS_INTERNAL_TOKENS": "news=n-secret-0123456789",
                "DELINKCIOUS_NATS_URL": NATS,
                "DELINKCIOUS_SOCIAL_GRAPH_URL": "http://127.0.0.1:1",
            },
            "DELINKCIOUS_NEWS_DATABASE_URL (or DELINKCIOUS_NEWS_REDIS_URL) is required",
        ),
        (
            ["serve", "links"],
            {
                "DELINKCIOUS_INTERNAL_TOKENS": TOKENS,
                "DELINKCIOUS_NATS_URL": NATS,
                "DELINKCIOUS_LINKS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/links",
            },
            "DELINKCIOUS_SECRET_KEY is required: links signs page tokens",
        ),
        (
            ["serve", "users"],
            {
                "DELINKCIOUS_INTERNAL_TOKENS": "users=u-secret-0123456789",
                "DELINKCIOUS_USERS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/users",
                "DELINKCIOUS_FAULTS": "users.sign_up:error=0.5",
            },
            "DELINKCIOUS_FAULTS: users has no method 'sign_up'",
        ),
        (["serve", "accounting"], {"DELINKCIOUS_INTERNAL_TOKENS": TOKENS}, "unknown service"),
        (
            ["serve", "links"],
            {"DELINKCIOUS_MAX_LINKS_PER_USER": "lots"},
            "DELINKCIOUS_MAX_LINKS_PER_USER",
        ),
        (
            ["up"],
            {"DELINKCIOUS_LINK_CHECKER_ALLOWED_NETWORKS": "10.0.0.0/33"},
            "DELINKCIOUS_LINK_CHECKER_ALLOWED_NETWORKS",
        ),
        (["up"], {"DELINKCIOUS_FAULTS": "linkz.get_links:error=1"}, "no service 'linkz'"),
    ],
)
def test_a_wrong_configuration_is_a_one_line_error(
    args: list[str], env: dict[str, str], reason: str, tmp_path: Path
) -> None:
    env = {**env, "DELINKCIOUS_DATA_DIR": str(tmp_path)}
    done = delinkcious(*args, "--port", str(free_port()), env=env)
    assert done.returncode != 0
    assert reason in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "0123456789" not in done.stderr  # no token is ever echoed


def test_a_missing_dependency_is_waited_for_then_named(tmp_path: Path) -> None:
    env = {
        "DELINKCIOUS_INTERNAL_TOKENS": TOKENS,
        "DELINKCIOUS_DATA_DIR": str(tmp_path),
        "DELINKCIOUS_NATS_URL": "nats://127.0.0.1:4222",
        # Nothing listens on port 1: the service retries, then gives up with the reason.
        "DELINKCIOUS_LINKS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/links",
        "DELINKCIOUS_SECRET_KEY": "k" * 32,
        "DELINKCIOUS_STARTUP_TIMEOUT_SECONDS": "1.5",
    }
    started = time.monotonic()
    done = delinkcious("serve", "links", "--port", str(free_port()), env=env)
    assert done.returncode != 0
    assert time.monotonic() - started >= 1.5
    last = done.stderr.strip().splitlines()[-1]
    assert "the links database is not reachable after 1.5 s" in last, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("options", ["", "?ssl=disable"])
def test_migrate_creates_the_database_and_is_idempotent(tmp_path: Path, options: str) -> None:
    """Also with connection options in the URL, as production's `?ssl=require`: they are
    the driver's arguments, never settings sent to the server."""
    url = f"{postgres_url().rsplit('/', 1)[0]}/delinkcious_migrate_{os.getpid()}"
    env = {
        "DELINKCIOUS_LINKS_DATABASE_URL": url + options,
        "DELINKCIOUS_DATA_DIR": str(tmp_path),
        "DELINKCIOUS_STARTUP_TIMEOUT_SECONDS": "5",
    }
    try:
        for _ in range(2):
            done = delinkcious("migrate", "links", env=env)
            assert done.returncode == 0, done.stderr
            assert "links: schema is up to date (postgresql)" in done.stdout
        assert {"links", "link_tags", "outbox"} <= asyncio.run(_tables(url))
    finally:
        asyncio.run(drop_databases([url]))


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


SLOW_APP = textwrap.dedent(
    """
    import asyncio, sys
    from contextlib import asynccontextmanager
    from fastapi import FastAPI
    from delinkcious.cli.serving import listen, run, serve

    app = FastAPI()

    @app.get("/slow")
    async def slow():
        await asyncio.sleep(1.5)
        return {"done": True}

    @asynccontextmanager
    async def context():
        yield app
        print("closed", flush=True)

    run(serve(context(), listen("127.0.0.1", int(sys.argv[1])), lambda url: print(url, flush=True)))
    """
)


def test_sigterm_lets_requests_in_flight_finish(tmp_path: Path) -> None:
    """What `serve` does for every service: stop accepting, finish what is running, close."""
    script = tmp_path / "slow.py"
    script.write_text(SLOW_APP)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(script), str(port)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith("http://127.0.0.1:")
    answers: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answers.append(httpx.get(f"http://127.0.0.1:{port}/slow", timeout=10))
    )
    request.start()
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    request.join()
    assert process.wait(timeout=15) == 0
    assert [answer.json() for answer in answers] == [{"done": True}]
    assert process.stdout.read().strip() == "closed"


def test_reload_restarts_the_service_when_its_source_changes(tmp_path: Path) -> None:
    """`serve --reload`, the dev overlay's inner loop: a saved .py file restarts it."""
    import delinkcious

    port = free_port()
    env = {
        **os.environ,
        "DELINKCIOUS_INTERNAL_TOKENS": "gateway=g-secret-0123456789",
        **{
            f"DELINKCIOUS_{name}_URL": "http://127.0.0.1:1"
            for name in ("LINKS", "USERS", "SOCIAL_GRAPH", "NEWS")
        },
    }
    output = tmp_path / "output"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [str(BIN), "serve", "gateway", "--port", str(port), "--reload"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    probe = Path(delinkcious.__file__).parent / f"_reload_probe_{os.getpid()}.py"
    try:
        _wait_until(lambda: output.read_text().count("is serving at") == 1, process, output)
        probe.write_text("# written by a test of serve --reload; deleted at once\n")
        _wait_until(lambda: output.read_text().count("is serving at") == 2, process, output)
        assert "source file(s) changed: restarting" in output.read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        probe.unlink(missing_ok=True)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def _wait_until(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], output: Path
) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert process.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.1)
