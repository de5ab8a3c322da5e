"""Versions, the traffic shaper and self-healing, on `up --processes` with three replicas
of links and a canary of it announcing another version.

Every request goes through the real gateway to real service processes; which version
answered is read from the ``Delinkcious-Served-By`` header. The counts behind the issue's
figures at full size (10 000 requests from 1 000 users, wrk under route changes) are
printed by ``benchmarks/traffic.py``; here each property is asserted on every request.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from delinkcious.cli.processes import ports
from delinkcious.platform.routing.router import bucket
from tests.e2e.conftest import (
    CHECKER_ENV,
    Server,
    drop_backends,
    new_username,
    processes_env,
    register_and_login,
)
from tests.e2e.test_social_news import eventually

STABLE, CANARY = "0.1.0", "9.9.9-canary"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    env = {**CHECKER_ENV, **processes_env(suffix), "DELINKCIOUS_VERSION": STABLE}
    server = Server(
        tmp_path_factory.mktemp("shaped"),
        env=env,
        processes=True,
        args=("--replicas", "links=3", "--canary", f"links={CANARY}"),
        ports_used=9,
    )
    try:
        yield server.start()
    finally:
        if server.process is not None:
            server.stop()
        asyncio.run(drop_backends(suffix, env))


@pytest.fixture(scope="module")
def api(cluster: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.url, timeout=20) as client:
        yield client


def routes_path(cluster: Server) -> Path:
    return cluster.data_dir / "routes.yaml"


def admin(cluster: Server, api: httpx.Client) -> dict[str, Any]:
    token = (cluster.data_dir / "admin-token").read_text()
    response = api.get("/admin/routes", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    table: dict[str, Any] = response.json()
    return table


def set_links_route(cluster: Server, api: httpx.Client, **changes: Any) -> dict[str, Any]:
    """Rewrite the links route of the table file; wait until the gateway has it in force."""
    path = routes_path(cluster)
    table = yaml.safe_load(path.read_text())
    table["routes"]["links"].update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        table["routes"]["links"].pop(key)
    path.write_text(yaml.safe_dump(table))
    wanted = table["routes"]["links"]
    methods = sorted(wanted["canary_methods"]) if wanted.get("canary_methods") else None

    def in_force() -> dict[str, Any] | None:
        route: dict[str, Any] = admin(cluster, api)["routes"]["links"]
        same = route["canary_weight"] == wanted.get("canary_weight", 0)
        return route if same and route["canary_methods"] == methods else None

    route = eventually(in_force, timeout=10)
    assert route is not None, "the gateway did not reload the table"
    return route


def served(response: httpx.Response) -> dict[str, str]:
    header = response.headers.get("delinkcious-served-by", "")
    return dict(entry.split("=", 1) for entry in header.split(", ") if "=" in entry)


def links_version(api: httpx.Client, headers: dict[str, str]) -> str:
    response = api.get("/v1/links", headers=headers, params={"limit": 1})
    assert response.status_code == 200, response.text
    return served(response)["links"]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def pid_serving(port: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                b"serve" in argv
                and b"--port" in argv
                and argv[argv.index(b"--port") + 1] == (str(port).encode())
            ):
                return int(entry.name)
    raise AssertionError(f"no process serves port {port}")


# -- versions -------------------------------------------------------------------------------


def test_every_process_says_its_version(cluster: Server, api: httpx.Client) -> None:
    assert api.get("/version").json()["version"] == STABLE
    route = admin(cluster, api)["routes"]["links"]
    canary_url = route["canary"][0]["url"]
    assert httpx.get(f"{canary_url}/version").json() == {
        "service": "links",
        "version": CANARY,
        "revision": api.get("/version").json()["revision"],
    }
    metrics = httpx.get(f"{canary_url}/metrics").text
    assert 'delinkcious_build_info{revision="' in metrics and f'version="{CANARY}"' in metrics
    headers = register_and_login(api)
    response = api.get("/v1/links", headers=headers)
    assert served(response) == {"gateway": STABLE, "users": STABLE, "links": STABLE}
    assert f'"version":"{CANARY}"' in cluster.output  # the canary's own log lines


# -- the shaper -------------------------------------------------------------------------------


def test_each_user_gets_the_version_their_bucket_says_and_only_moves_to_the_canary(
    cluster: Server, api: httpx.Client
) -> None:
    users = [new_username() for _ in range(40)]
    sessions = {user: register_and_login(api, user) for user in users}
    route = set_links_route(cluster, api, canary_weight=2500)
    expected = {u: CANARY if bucket(route["salt"], u) < 2500 else STABLE for u in users}
    assert set(expected.values()) == {STABLE, CANARY}  # the sample has both
    for _ in range(3):
        for user in users:
            assert links_version(api, sessions[user]) == expected[user], user

    set_links_route(cluster, api, canary_weight=6000)
    for user in users:
        now = links_version(api, sessions[user])
        if expected[user] == CANARY:
            assert now == CANARY, f"{user} moved back from the canary"
        assert now == (CANARY if bucket(route["salt"], user) < 6000 else STABLE)


def test_the_testers_override_wins_on_every_request(cluster: Server, api: httpx.Client) -> None:
    set_links_route(cluster, api, canary_weight=5000)
    headers = register_and_login(api)
    for choice, version in (("always", CANARY), ("never", STABLE)):
        for _ in range(20):
            assert links_version(api, {**headers, "Delinkcious-Canary": choice}) == version
    refused = api.get("/v1/links", headers={**headers, "Delinkcious-Canary": "sometimes"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_canary_override"


def test_per_method_targeting_keeps_writes_on_stable(cluster: Server, api: httpx.Client) -> None:
    set_links_route(cluster, api, canary_weight=10_000, canary_methods=["get_links"])
    try:
        headers = register_and_login(api)
        for n in range(10):
            added = api.post(
                "/v1/links",
                headers={**headers, "Delinkcious-Canary": "always"},
                json={"url": f"http://127.0.0.1:9/{n}", "title": f"t{n}"},
            )
            assert added.status_code == 201 and served(added)["links"] == STABLE
            assert links_version(api, headers) == CANARY
    finally:
        set_links_route(cluster, api, canary_weight=0, canary_methods=None)


async def _load(base_url: str, headers: list[dict[str, str]], stop: asyncio.Event) -> list[int]:
    """GET /v1/links as fast as 8 clients can until ``stop``; every status code seen."""
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:

        async def worker(n: int) -> None:
            while not stop.is_set():
                try:
                    response = await client.get("/v1/links", headers=headers[n % len(headers)])
                    statuses.append(response.status_code)
                except httpx.HTTPError:
                    statuses.append(0)

        await asyncio.gather(*(worker(n) for n in range(8)))
    return statuses


def test_twenty_table_changes_and_a_malformed_one_under_load_fail_nothing(
    cluster: Server, api: httpx.Client
) -> None:
    headers = [register_and_login(api) for _ in range(4)]
    path = routes_path(cluster)
    good = yaml.safe_load(path.read_text())

    async def in_force(weight: int) -> None:
        async with httpx.AsyncClient(base_url=cluster.url) as client:
            token = (cluster.data_dir / "admin-token").read_text()
            for _ in range(100):
                table = await client.get(
                    "/admin/routes", headers={"Authorization": f"Bearer {token}"}
                )
                if table.json()["routes"]["links"]["canary_weight"] == weight:
                    return
                await asyncio.sleep(0.1)
        raise AssertionError(f"weight {weight} never in force")

    async def scenario() -> list[int]:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(cluster.url, headers, stop))
        for n in range(20):  # each one reloaded while the load runs
            table = yaml.safe_load(yaml.safe_dump(good))
            route = table["routes"]["links"]
            route["canary_weight"] = 1 + n * 500
            route["stable"] = route["stable"][n % 3 :] + route["stable"][: n % 3]
            path.write_text(yaml.safe_dump(table))
            await in_force(route["canary_weight"])
        path.write_text("routes:\n  links: {stable: [oops]\n")  # not even YAML
        await asyncio.sleep(2)
        stop.set()
        return await load

    statuses = asyncio.run(scenario())
    state = admin(cluster, api)
    assert len(statuses) > 200
    assert [s for s in statuses if s != 200] == []
    assert state["refused"] is not None and "not YAML" in state["refused"]
    assert state["routes"]["links"]["canary_weight"] == 1 + 19 * 500  # the last good one
    path.write_text(yaml.safe_dump(good))
    eventually(lambda: admin(cluster, api)["refused"] is None, timeout=10)


# -- self-healing -------------------------------------------------------------------------------


def test_one_replica_of_three_killed_fails_no_read(cluster: Server, api: httpx.Client) -> None:
    set_links_route(cluster, api, canary_weight=0)
    headers = [register_and_login(api) for _ in range(4)]
    victim = admin(cluster, api)["routes"]["links"]["stable"][1]["url"]
    restarts_before = cluster.output.count("links-2 was killed by SIGKILL")

    async def scenario() -> list[int]:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(cluster.url, headers, stop))
        await asyncio.sleep(1)
        os.kill(pid_serving(port_of(victim)), signal.SIGKILL)
        await asyncio.sleep(3)
        stop.set()
        return await load

    statuses = asyncio.run(scenario())
    assert len(statuses) > 100
    assert [s for s in statuses if s != 200] == []
    eventually(lambda: "links-2 is back" in cluster.output, timeout=20)
    assert cluster.output.count("links-2 was killed by SIGKILL") == restarts_before + 1


# Which call needs each service; the API "answers again" once that call succeeds.
NEEDS = {
    "gateway": ("GET", "/v1/links"),
    "users": ("POST", "/v1/sessions"),
    "social_graph": ("GET", "/v1/following"),
    "news": ("GET", "/v1/news"),
}


@pytest.mark.parametrize("service", [*NEEDS, "link_checker"])
def test_a_killed_service_is_back_within_five_seconds_losing_no_write(
    cluster: Server, api: httpx.Client, service: str
) -> None:
    author = new_username()
    headers = register_and_login(api, author)
    follower = register_and_login(api)
    assert api.post("/v1/following", headers=follower, json={"followed": author}).status_code == 201
    acknowledged: list[str] = []
    failed = 0
    port = ports(cluster.port)[service]
    os.kill(pid_serving(port), signal.SIGKILL)
    killed = time.monotonic()
    back = None
    with httpx.Client(base_url=cluster.url, timeout=5) as client:
        while time.monotonic() - killed < 20:
            url = f"http://127.0.0.1:9/{service}/{len(acknowledged)}-{failed}"
            try:
                added = client.post("/v1/links", headers=headers, json={"url": url, "title": "t"})
                if added.status_code == 201:
                    acknowledged.append(url)
                else:
                    failed += 1
                method, path = NEEDS.get(service, ("GET", "/v1/links"))
                body = {"username": author, "password": PASSWORD} if method == "POST" else None
                probe = client.request(method, path, headers=headers, json=body)
                if probe.status_code in (200, 201) and back is None:
                    back = time.monotonic() - killed
            except httpx.HTTPError:
                failed += 1
            if back is not None and len(acknowledged) >= 5:
                break
            time.sleep(0.05)
    print(f"{service}: answering again {back:.1f} s after kill -9; {failed} calls failed meanwhile")
    assert back is not None and back <= 5.0, back
    if service in ("social_graph", "news", "link_checker"):
        assert failed == 0  # adding a link never needed it: only the calls that did fail
    eventually(lambda: f"{service} is back" in cluster.output, timeout=30)
    listed = {
        link["url"]
        for link in api.get("/v1/links", headers=headers, params={"limit": 100}).json()["links"]
    }
    assert set(acknowledged) <= listed  # no acknowledged write lost

    def news() -> set[str]:
        page = api.get("/v1/news", headers=follower, params={"limit": 100}).json()
        return {event["url"] for event in page["events"]}

    eventually(lambda: set(acknowledged) <= news(), timeout=60)
    assert set(acknowledged) <= news()  # and no event of one
    if service == "link_checker":  # the restarted checker checks what was added meanwhile
        eventually(
            lambda: all(
                link["status"] != "pending"
                for link in api.get("/v1/links", headers=headers, params={"limit": 100}).json()[
                    "links"
                ]
            ),
            timeout=60,
        )
