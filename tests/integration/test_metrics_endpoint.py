"""``/metrics`` served for real, the metered bus over MemoryBus, the gateway's HTTP metrics.

The registry is process-wide, so every test reads differences or uses labels of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from delinkcious.gateway.http_observability import HttpObservabilityMiddleware
from delinkcious.links.tables import metadata, outbox
from delinkcious.model.checker import CheckResult
from delinkcious.model.errors import NotFound
from delinkcious.model.events import Event, EventType
from delinkcious.model.links import LinkStatus
from delinkcious.platform.build import Build
from delinkcious.platform.bus import MemoryBus
from delinkcious.platform.db import create_engine
from delinkcious.platform.metrics import (
    MeteredBus,
    OutboxGauge,
    install_metrics,
    metered_link_checker,
)
from delinkcious.platform.middleware import wrap
from delinkcious.platform.middleware.metrics import metrics_middleware
from delinkcious.platform.sql_outbox import SqlOutbox, enqueue

METRICS = (
    "delinkcious_requests_total",
    "delinkcious_request_duration_seconds_bucket",
    "delinkcious_request_duration_seconds_sum",
    "delinkcious_request_duration_seconds_count",
    "delinkcious_http_requests_total",
    "delinkcious_http_request_duration_seconds_bucket",
    "delinkcious_events_published_total",
    "delinkcious_events_consumed_total",
    "delinkcious_outbox_pending",
    "delinkcious_link_checks_total",
    "delinkcious_build_info",
)
_unique = itertools.count()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` on a real uvicorn server on loopback, in this event loop, for the block."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


class Echo(Protocol):
    async def echo(self, text: str) -> str: ...


class EchoCore:
    async def echo(self, text: str) -> str:
        if not text:
            raise NotFound("nothing to echo")
        return text


class FixedChecker:
    async def check_link(self, url: str) -> CheckResult:
        return CheckResult(LinkStatus.VALID, "200")


def tiny_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    sub = FastAPI()

    @sub.get("/things/{name}")
    async def thing(name: str) -> dict[str, str]:
        return {"thing": name}

    app.mount("/sub", sub)
    app.add_middleware(HttpObservabilityMiddleware)
    return app


async def test_metrics_are_served_in_prometheus_text_format(tmp_path: Path) -> None:
    # Touch every metric: a service call, an HTTP request, events, the outbox, a link check.
    service = wrap(Echo, "echo", EchoCore(), metrics_middleware("7.7.7"))
    await service.echo("hi")
    bus = MeteredBus(MemoryBus())

    async def handle(event: Event) -> None:
        return None

    await bus.subscribe("metrics_test", [EventType.LINK_ADDED], handle)
    await bus.publish(Event(type=EventType.LINK_ADDED, author="ada", url="https://a.example/"))
    await metered_link_checker(FixedChecker()).check_link("https://a.example/")
    engine = create_engine(f"sqlite:///{tmp_path / 'links.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            for n in range(3):
                event = Event(type=EventType.LINK_ADDED, author="ada", url=f"https://{n}.example/")
                await enqueue(conn, outbox, event)
        await OutboxGauge(SqlOutbox(engine, outbox)).refresh()
    finally:
        await engine.dispose()

    app = tiny_app()
    install_metrics(app, Build("links", "7.7.7", "abc123"))
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/items/1")).status_code == 200
        response = await client.get("/metrics")

    assert response.status_code == 200  # no redirect to /metrics/
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    names = {name for name, _ in samples}
    assert set(METRICS) <= names
    assert not any(name.endswith("_created") for name in names)
    assert "process_resident_memory_bytes" in names  # the default collectors come along
    assert samples["delinkcious_outbox_pending", ()] == 3
    labels = (("revision", "abc123"), ("service", "links"), ("version", "7.7.7"))
    assert samples["delinkcious_build_info", labels] == 1
    success = (
        ("method", "echo"),
        ("outcome", "success"),
        ("service", "echo"),
        ("version", "7.7.7"),
    )
    assert samples["delinkcious_requests_total", success] >= 1
    bucket = (("le", "5.0"), ("method", "echo"), ("service", "echo"), ("version", "7.7.7"))
    assert samples["delinkcious_request_duration_seconds_bucket", bucket] >= 1
    assert "/metrics" not in app.openapi()["paths"]


async def test_metered_bus_counts_published_and_consumed_events() -> None:
    consumer = f"consumer{next(_unique)}"
    bus = MeteredBus(MemoryBus(initial_backoff=0.001))
    failures = {"left": 2}
    seen: list[str] = []

    async def flaky(event: Event) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("store down")
        seen.append(event.id)

    def published(kind: EventType) -> float:
        return sample("delinkcious_events_published_total", type=kind.value)

    def consumed(kind: EventType, outcome: str) -> float:
        return sample(
            "delinkcious_events_consumed_total",
            consumer=consumer,
            type=kind.value,
            outcome=outcome,
        )

    await bus.subscribe(consumer, [EventType.LINK_ADDED, EventType.LINK_DELETED], flaky)
    before = published(EventType.LINK_ADDED), published(EventType.LINK_DELETED)
    added = Event(type=EventType.LINK_ADDED, author="ada", url="https://a.example/")
    await bus.publish(added)  # the MemoryBus redelivers until the handler succeeds
    await bus.publish(Event(type=EventType.LINK_DELETED, author="ada", url="https://a.example/"))
    await bus.publish(Event(type=EventType.LINK_CHECKED, author="ada", url="https://a.example/"))

    assert seen[0] == added.id and len(seen) == 2
    assert published(EventType.LINK_ADDED) - before[0] == 1
    assert published(EventType.LINK_DELETED) - before[1] == 1
    assert consumed(EventType.LINK_ADDED, "error") == 2
    assert consumed(EventType.LINK_ADDED, "success") == 1
    assert consumed(EventType.LINK_DELETED, "success") == 1
    assert consumed(EventType.LINK_CHECKED, "success") == 0  # not subscribed

    await bus.close()
    before_closed = published(EventType.LINK_ADDED)
    with pytest.raises(ConnectionError):  # errors pass through, and nothing is counted
        await bus.publish(added)
    assert published(EventType.LINK_ADDED) == before_closed


async def test_outbox_gauge_follows_the_table_and_survives_a_failed_read(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'links.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        table = SqlOutbox(engine, outbox)
        gauge = OutboxGauge(table, interval=0.01)
        gauge.start()
        async with engine.begin() as conn:
            await enqueue(conn, outbox, Event(type=EventType.LINK_ADDED, author="a", url="u"))
        for _ in range(200):
            if sample("delinkcious_outbox_pending") == 1:
                break
            await asyncio.sleep(0.01)
        assert sample("delinkcious_outbox_pending") == 1
        for row_id, _ in await table.pending(10, ()):
            await table.mark_sent(row_id)
        for _ in range(200):
            if sample("delinkcious_outbox_pending") == 0:
                break
            await asyncio.sleep(0.01)
        assert sample("delinkcious_outbox_pending") == 0
        await gauge.stop()
    finally:
        await engine.dispose()

    class Broken:
        async def size(self) -> int:
            raise OSError("database gone")

    await OutboxGauge(Broken()).refresh()  # logs, keeps the last value
    assert sample("delinkcious_outbox_pending") == 0


async def test_http_metrics_record_route_templates_not_raw_paths() -> None:
    app = tiny_app()
    install_metrics(app, Build("links", "7.7.7", "abc123"))

    def requests(route: str, method: str, status: str) -> float:
        labels = {"route": route, "method": method, "status": status}
        return sample("delinkcious_http_requests_total", **labels)

    tag = f"/t{next(_unique)}"
    before = {
        key: requests(*key)
        for key in [
            ("/items/{item_id}", "GET", "200"),
            ("/items/{item_id}", "GET", "422"),
            ("/items/{item_id}", "POST", "405"),
            ("unmatched", "GET", "404"),
            ("/boom", "GET", "500"),
            ("/sub/things/{name}", "GET", "200"),
            ("unmatched", "other", "404"),
        ]
    }
    durations_before = sample(
        "delinkcious_http_request_duration_seconds_count", route="/items/{item_id}", method="GET"
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for n in (1, 2, 3):
            assert (await client.get(f"/items/{n}")).status_code == 200
        assert (await client.get("/items/abc")).status_code == 422
        assert (await client.post("/items/1")).status_code == 405
        assert (await client.get(f"{tag}/nothing/here")).status_code == 404
        assert (await client.get("/boom")).status_code == 500
        assert (await client.get("/sub/things/x")).status_code == 200
        assert (await client.request("BREW", f"{tag}/pot")).status_code == 404
        text = (await client.get("/metrics")).text

    after = {key: requests(*key) - value for key, value in before.items()}
    assert after == {
        ("/items/{item_id}", "GET", "200"): 3,
        ("/items/{item_id}", "GET", "422"): 1,
        ("/items/{item_id}", "POST", "405"): 1,
        ("unmatched", "GET", "404"): 1,
        ("/boom", "GET", "500"): 1,
        ("/sub/things/{name}", "GET", "200"): 1,
        ("unmatched", "other", "404"): 1,
    }
    durations = sample(
        "delinkcious_http_request_duration_seconds_count", route="/items/{item_id}", method="GET"
    )
    assert durations - durations_before == 4
    assert tag not in text and "/items/1" not in text and "BREW" not in text
