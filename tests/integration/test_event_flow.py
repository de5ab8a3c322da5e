"""The whole event loop on the distributed backends: PostgreSQL, Redis and NATS JetStream.

Every service runs in this process (the ``embedded`` wiring) but on the real servers: links,
users and the social graph each on their own fresh PostgreSQL database, news feeds in Redis,
events through a NATS JetStream server of this module's own, so a test can stop it.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import nats
import pytest
import redis.asyncio as redis

from delinkcious.embedded import EmbeddedSystem, embedded
from delinkcious.model.events import Event, EventType
from delinkcious.platform.config import Settings
from tests.support.nats import NatsServer
from tests.support.postgres import fresh_databases

REDIS_URL = "redis://127.0.0.1:6379/0"
PASSWORD = "correct horse battery"


class _Site(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200 if self.path.startswith("/ok") else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("flow-nats"))
    server.start()
    await server.ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def system(
    broker: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[EmbeddedSystem]:
    async with fresh_databases(["links", "users", "social_graph"]) as urls:
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("flow"),
            links_database_url=urls["links"],
            users_database_url=urls["users"],
            social_graph_database_url=urls["social_graph"],
            news_redis_url=REDIS_URL,
            nats_url=broker.url,
            link_checker_allowed_networks="127.0.0.1/32",
            link_checker_retries=0,
        )
        async with embedded(settings) as running:
            yield running


@pytest.fixture
async def api(system: EmbeddedSystem) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=system.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


@pytest.fixture
async def people(api: httpx.AsyncClient) -> AsyncIterator[dict[str, dict[str, str]]]:
    """alice, and bob who follows her; each name with a unique suffix."""
    suffix = secrets.token_hex(3)
    headers = {}
    for name in (f"alice{suffix}", f"bob{suffix}"):
        created = await api.post(
            "/v1/users",
            json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        )
        assert created.status_code == 201, created.text
        session = await api.post("/v1/sessions", json={"username": name, "password": PASSWORD})
        headers[name] = {"Access-Token": session.json()["access_token"]}
    alice, bob = headers
    follow = await api.post("/v1/following", json={"followed": alice}, headers=headers[bob])
    assert follow.status_code == 201
    yield headers
    client = redis.from_url(REDIS_URL)
    for name in headers:
        keys = [key async for key in client.scan_iter(f"delinkcious:news:{name}:*")]
        if keys:
            await client.delete(*keys)
    await client.aclose()


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy: events cross the bus asynchronously."""
    async with asyncio.timeout(within):
        while not (result := await check()):  # noqa: ASYNC110 (polling over HTTP is the point)
            await asyncio.sleep(0.05)
        return result


async def feed(api: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await api.get("/v1/news", params={"limit": 100}, headers=headers)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def statuses(api: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, str]:
    response = await api.get("/v1/links", params={"limit": 100}, headers=headers)
    return {link["url"]: link["status"] for link in response.json()["links"]}


async def test_a_saved_link_reaches_followers_and_gets_checked(
    api: httpx.AsyncClient, people: dict[str, dict[str, str]], site: str
) -> None:
    alice, bob = people
    for path in ("/ok", "/gone"):
        added = await api.post(
            "/v1/links", json={"url": site + path, "title": path}, headers=people[alice]
        )
        assert added.status_code == 201

    events = await eventually(lambda: _when(feed(api, people[bob]), lambda e: len(e) == 2))
    assert {(e["type"], e["author"], e["url"]) for e in events} == {
        ("link.added", alice, site + "/ok"),
        ("link.added", alice, site + "/gone"),
    }
    checked = await eventually(
        lambda: _when(statuses(api, people[alice]), lambda s: "pending" not in s.values())
    )
    assert checked == {site + "/ok": "valid", site + "/gone": "invalid"}
    assert await feed(api, people[alice]) == []


async def test_nothing_is_lost_while_the_broker_is_away(
    api: httpx.AsyncClient, people: dict[str, dict[str, str]], broker: NatsServer, site: str
) -> None:
    alice, bob = people
    broker.stop()
    try:
        urls = [f"{site}/ok/{i}" for i in range(8)]
        for url in urls:
            added = await api.post(
                "/v1/links", json={"url": url, "title": url}, headers=people[alice]
            )
            assert added.status_code == 201, "adds must succeed while the broker is down"
        await asyncio.sleep(1.0)
        assert await feed(api, people[bob]) == []
    finally:
        broker.start()
        await broker.ready()

    events = await eventually(lambda: _when(feed(api, people[bob]), lambda e: len(e) >= 8))
    await asyncio.sleep(1.0)  # let any duplicate delivery land before counting
    events = await feed(api, people[bob])
    assert sorted(e["url"] for e in events) == sorted(urls)
    assert len({e["id"] for e in events}) == len(events) == 8
    checked = await eventually(
        lambda: _when(statuses(api, people[alice]), lambda s: "pending" not in s.values())
    )
    assert set(checked.values()) == {"valid"}


async def test_a_redelivered_event_does_not_change_the_feed(
    api: httpx.AsyncClient, people: dict[str, dict[str, str]], broker: NatsServer
) -> None:
    alice, bob = people
    await api.post(
        "/v1/links", json={"url": "http://127.0.0.1:9/x", "title": "x"}, headers=people[alice]
    )
    [first] = await eventually(lambda: _when(feed(api, people[bob]), lambda e: len(e) == 1))
    again = Event(
        id=first["id"],
        type=EventType.LINK_ADDED,
        author=alice,
        url=first["url"],
        title=first["title"],
    )
    # Straight into the stream under a new message id, so the broker's own dedupe does not
    # drop it: the news consumer gets the same event id a second time, as after a crash.
    await _publish(broker, again, message_id=f"redelivery-{again.id}")
    probe = Event(
        type=EventType.LINK_ADDED, author=alice, url="http://127.0.0.1:9/probe", title="probe"
    )
    await _publish(broker, probe, message_id=probe.id)
    await eventually(lambda: _when(feed(api, people[bob]), lambda e: len(e) >= 2))
    await asyncio.sleep(0.5)  # the two were fetched together; let both handlers finish
    events = await feed(api, people[bob])
    assert [e["url"] for e in events] == ["http://127.0.0.1:9/probe", first["url"]]
    assert events[1] == first


async def _publish(broker: NatsServer, event: Event, message_id: str) -> None:
    connection = await nats.connect(broker.url)
    try:
        await connection.jetstream().publish(
            f"delinkcious.events.{event.type.value}",
            event.to_json(),
            headers={"Nats-Msg-Id": message_id},
        )
    finally:
        await connection.close()


async def _when(value: Awaitable[Any], condition: Callable[[Any], bool]) -> Any:
    result = await value
    return result if condition(result) else None
