"""The generic transport end to end: real uvicorn servers on loopback, real httpx clients.

A toy Protocol covers the shapes that must travel (dataclass, frozenset, datetime, enum,
Optional, list, None) and the failure modes; the real ``LinkManager`` over SQLite shows a
remote gives exactly what the in-process manager gives.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from opentelemetry import trace

from delinkcious.links.manager import LinkService
from delinkcious.links.paging import PageTokens
from delinkcious.links.sql_store import SqlLinkStore
from delinkcious.model.errors import (
    AlreadyExists,
    DelinkciousError,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from delinkcious.model.links import (
    AddLinkRequest,
    GetLinksRequest,
    LinkFilter,
    LinkManager,
    UpdateLinkRequest,
)
from delinkcious.model.markers import idempotent
from delinkcious.platform.db import create_engine
from delinkcious.platform.migrations import upgrade
from delinkcious.platform.transport import (
    InternalAuthError,
    RemoteError,
    internal_router,
    make_client,
    remote,
)

TOKENS = {"gateway": "gateway-secret-0123", "news": "news-secret-4567"}
SECRET = TOKENS["gateway"]
T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    colours: frozenset[Colour]
    since: dt.datetime
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    colour: Colour
    at: dt.datetime
    tags: frozenset[str]
    note: str | None


@runtime_checkable
class Toy(Protocol):
    async def find(self, query: Query, limit: int | None = None) -> list[Item]: ...

    async def forget(self, name: str) -> None: ...

    async def fail(self, kind: str) -> str: ...

    @idempotent
    async def read_flaky(self, key: str) -> int: ...

    async def write_flaky(self, key: str) -> int: ...

    @idempotent
    async def slow(self, key: str, seconds: float) -> float: ...

    async def slow_write(self, key: str, seconds: float) -> float: ...

    @idempotent
    async def trace_id(self) -> str: ...


class BiggerToy(Toy, Protocol):
    """What a newer client knows and an older server does not."""

    async def extra(self) -> None: ...


FAILURES: dict[str, Exception] = {
    "not_found": NotFound("no such toy", code="toy_not_found"),
    "already_exists": AlreadyExists("that toy exists"),
    "invalid": InvalidArgument("a toy needs a name", code="invalid_name"),
    "limit": LimitExceeded("too many toys"),
    "unauthenticated": Unauthenticated("who are you?", code="bad_session"),
    "unavailable": Unavailable("the toy shop is shut"),
    "custom": DelinkciousError("something of the domain", code="custom_rule"),
}


class ToyService:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()

    async def find(self, query: Query, limit: int | None = None) -> list[Item]:
        items = [
            Item(
                name=f"{query.name}-{index}",
                colour=colour,
                at=query.since + dt.timedelta(seconds=index),
                tags=frozenset({query.name, str(index)}),
                note=query.note,
            )
            for index, colour in enumerate(sorted(query.colours))
        ]
        return items if limit is None else items[:limit]

    async def forget(self, name: str) -> None:
        self.hits[name] += 1

    async def fail(self, kind: str) -> str:
        if kind == "crash":
            raise RuntimeError("the toy's secret internals")
        raise FAILURES[kind]

    async def read_flaky(self, key: str) -> int:
        return self._flaky(key)

    async def write_flaky(self, key: str) -> int:
        return self._flaky(key)

    def _flaky(self, key: str) -> int:
        self.hits[key] += 1
        if self.hits[key] == 1:
            raise Unavailable("warming up")
        return self.hits[key]

    async def slow(self, key: str, seconds: float) -> float:
        self.hits[key] += 1
        await asyncio.sleep(seconds)
        return seconds

    async def slow_write(self, key: str, seconds: float) -> float:
        return await self.slow(key, seconds)

    async def trace_id(self) -> str:
        return format(trace.get_current_span().get_span_context().trace_id, "032x")


def bound_socket() -> socket.socket:
    """A loopback port that refuses connections until a server listens on it."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP
    # (without it every call waits ~40 ms for a delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def url_of(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def returned(call: Awaitable[object]) -> object:
    """What a call of a method declared ``-> None`` really returns: the test checks it is None."""
    return await call


@asynccontextmanager
async def serving(app: Any, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Runs ``app`` on a real uvicorn server in this event loop for the block."""
    sock = sock or bound_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        yield url_of(sock)
    finally:
        server.should_exit = True
        await task


class Recorder:
    """ASGI wrapper that notes each request's path and the caller the transport recorded."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.seen: list[tuple[str, str | None]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.seen.append((scope["path"], scope.get("state", {}).get("caller")))

    def count(self, path: str) -> int:
        return sum(1 for seen, _ in self.seen if seen == path)


@pytest.fixture(scope="module")
def toy_service() -> ToyService:
    return ToyService()


@pytest.fixture(scope="module")
async def link_service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LinkService]:
    path: Path = tmp_path_factory.mktemp("transport") / "links.db"
    engine = create_engine(f"sqlite:///{path}")
    await upgrade(engine, "delinkcious.links")
    store = SqlLinkStore(engine)
    # A still clock: page tokens sealed in-process and remotely are byte for byte the same.
    tokens = PageTokens(b"transport-test-secret-0123456789", clock=lambda: 2_000_000_000.0)
    yield LinkService(store, tokens, max_links_per_user=3)
    store.close()
    await engine.dispose()


@pytest.fixture(scope="module")
def recorder(toy_service: ToyService, link_service: LinkService) -> Recorder:
    app = FastAPI()
    app.include_router(internal_router("toy", Toy, toy_service, TOKENS))
    app.include_router(internal_router("links", LinkManager, link_service, TOKENS))
    app.include_router(internal_router("locked", Toy, toy_service, {}))
    bare = Counter[int]()

    @app.post("/internal/v1/bare-{status}/{method}")
    async def proxy_answer(status: int) -> PlainTextResponse:
        """What a proxy in front of a service may answer: a status and no error body."""
        bare[status] += 1
        return PlainTextResponse("the proxy says no", status_code=status)

    return Recorder(app)


@pytest.fixture(scope="module")
async def base_url(recorder: Recorder) -> AsyncIterator[str]:
    async with serving(recorder) as url:
        yield url


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as shared:
        yield shared


@pytest.fixture
def toy(base_url: str, client: httpx.AsyncClient) -> Toy:
    return remote(Toy, "toy", base_url, SECRET, client, backoff=0.01)


@pytest.fixture
def links(base_url: str, client: httpx.AsyncClient) -> LinkManager:
    return remote(LinkManager, "links", base_url, SECRET, client, backoff=0.01)


# -- round trips ---------------------------------------------------------------------------


async def test_toy_round_trips_equal_in_process(toy: Toy, toy_service: ToyService) -> None:
    query = Query("kite", frozenset({Colour.RED, Colour.BLUE}), T0, note="windy")
    assert await toy.find(query) == await toy_service.find(query)
    assert await toy.find(query, limit=1) == await toy_service.find(query, limit=1)
    assert await toy.find(query=query, limit=None) == await toy_service.find(query)
    found = await toy.find(Query("yo-yo", frozenset(), dt.datetime(2026, 5, 6)))
    assert found == []
    [item] = await toy.find(Query("top", frozenset({Colour.BLUE}), T0))
    assert type(item) is Item and item.colour is Colour.BLUE and item.note is None
    assert item.at == T0 and item.tags == frozenset({"top", "0"})


async def test_none_comes_back_as_none(toy: Toy, toy_service: ToyService) -> None:
    assert await returned(toy.forget("teddy")) is None
    assert toy_service.hits["teddy"] == 1


async def test_a_bad_call_fails_locally_like_in_process(toy: Toy, recorder: Recorder) -> None:
    before = len(recorder.seen)
    with pytest.raises(TypeError):
        await toy.find()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        await toy.forget("a", "b")  # type: ignore[call-arg]
    assert len(recorder.seen) == before


async def test_the_caller_is_recorded_for_logs(toy: Toy, recorder: Recorder) -> None:
    await toy.forget("recorded")
    assert recorder.seen[-1] == ("/internal/v1/toy/forget", "gateway")


# -- domain errors -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FAILURES))
async def test_domain_errors_come_back_as_themselves(toy: Toy, kind: str) -> None:
    expected = FAILURES[kind]
    with pytest.raises(DelinkciousError) as caught:
        await toy.fail(kind)
    assert type(caught.value) is type(expected)
    assert (caught.value.code, caught.value.message) == (expected.code, expected.message)


async def test_an_unexpected_failure_is_a_remote_error_that_leaks_nothing(
    toy: Toy, base_url: str, client: httpx.AsyncClient
) -> None:
    with pytest.raises(RemoteError) as caught:
        await toy.fail("crash")
    assert not isinstance(caught.value, DelinkciousError)
    response = await client.post(
        f"{base_url}/internal/v1/toy/fail",
        json={"kind": "crash"},
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "InternalError"
    assert "secret internals" not in response.text


async def test_a_method_the_server_lacks_is_a_remote_error(
    base_url: str, client: httpx.AsyncClient
) -> None:
    newer = remote(BiggerToy, "toy", base_url, SECRET, client)
    with pytest.raises(RemoteError, match="toy has no extra"):
        await newer.extra()


# -- the real LinkManager ------------------------------------------------------------------


async def test_links_remote_equals_in_process(
    links: LinkManager, link_service: LinkService
) -> None:
    added = [
        await links.add_link(
            AddLinkRequest("alice", f"https://example.com/{n}", f"Example {n}", tags=frozenset(tag))
        )
        for n, tag in enumerate([{"a"}, {"a", "b"}, {"b"}])
    ]
    assert added[0].tags == frozenset({"a"}) and added[0].created_at.tzinfo is not None
    for request in [
        GetLinksRequest("alice"),
        GetLinksRequest("alice", limit=2),
        GetLinksRequest("alice", LinkFilter(tag="a")),
        GetLinksRequest("alice", LinkFilter(title_regex="le [12]$")),
    ]:
        assert await links.get_links(request) == await link_service.get_links(request)
    first = await links.get_links(GetLinksRequest("alice", limit=2))
    assert first.links == added[:0:-1] and first.next_page_token is not None
    rest = await links.get_links(GetLinksRequest("alice", start_token=first.next_page_token))
    assert rest.links == added[:1] and rest.next_page_token is None

    changed = await links.update_link(
        UpdateLinkRequest(
            "alice",
            added[0].url,
            title="Renamed",
            add_tags=frozenset({"c"}),
            remove_tags=frozenset({"a"}),
        )
    )
    local = await link_service.get_links(GetLinksRequest("alice", LinkFilter(tag="c")))
    assert local.links == [changed] and changed.tags == frozenset({"c"})
    assert await returned(links.delete_link("alice", added[0].url)) is None
    with pytest.raises(NotFound) as caught:
        await links.delete_link("alice", added[0].url)
    with pytest.raises(NotFound) as in_process:
        await link_service.delete_link("alice", added[0].url)
    assert (caught.value.code, caught.value.message) == (
        in_process.value.code,
        in_process.value.message,
    )


@pytest.mark.parametrize(
    ("call", "error", "code"),
    [
        (
            lambda m: m.add_link(AddLinkRequest("bob", "ftp://x", "X")),
            InvalidArgument,
            "invalid_url",
        ),
        (lambda m: m.get_links(GetLinksRequest("bob", limit=0)), InvalidArgument, "invalid_limit"),
        (
            lambda m: m.get_links(GetLinksRequest("bob", start_token="forged.token")),
            InvalidArgument,
            "invalid_page_token",
        ),
        (
            lambda m: m.update_link(UpdateLinkRequest("bob", "https://nowhere.example/")),
            NotFound,
            None,
        ),
    ],
)
async def test_link_errors_match_in_process(
    links: LinkManager,
    link_service: LinkService,
    call: Callable[[LinkManager], Awaitable[Any]],
    error: type[DelinkciousError],
    code: str | None,
) -> None:
    with pytest.raises(error) as remotely:
        await call(links)
    with pytest.raises(error) as locally:
        await call(link_service)
    assert (remotely.value.code, remotely.value.message) == (
        locally.value.code,
        locally.value.message,
    )
    assert code is None or remotely.value.code == code


async def test_link_cap_and_duplicates_are_their_own_classes(links: LinkManager) -> None:
    """403 and 409 of the domain are told apart from a refused internal token by type."""
    await links.add_link(AddLinkRequest("carol", "https://carol.example/0", "Mine"))
    with pytest.raises(AlreadyExists):
        await links.add_link(AddLinkRequest("carol", "https://carol.example/0", "Again"))
    for n in (1, 2):
        await links.add_link(AddLinkRequest("carol", f"https://carol.example/{n}", "Mine"))
    with pytest.raises(LimitExceeded):
        await links.add_link(AddLinkRequest("carol", "https://carol.example/3", "One more"))


def test_a_remote_link_manager_is_a_link_manager(base_url: str, client: httpx.AsyncClient) -> None:
    assert isinstance(remote(LinkManager, "links", base_url, SECRET, client), LinkManager)


# -- bodies the server refuses -------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"request": {"username": 5}}',
        b'{"reqest": {"username": "alice"}}',
        b'{"request": {"username": "alice"}, "limit": 3}',
        b'{"request": {"username": "alice", "limit": "many"}}',
        b"[]",
        b"not json",
        b"",
    ],
)
async def test_malformed_bodies_are_422(
    base_url: str, client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(
        f"{base_url}/internal/v1/links/get_links",
        content=body,
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "InvalidArgument" and error["code"] == "validation_error"
    assert error["message"]


async def test_validation_messages_never_echo_arguments(
    base_url: str, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        f"{base_url}/internal/v1/links/delete_link",
        json={"username": "alice", "url": ["hunter2-password"]},
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert response.status_code == 422
    assert "hunter2" not in response.text and "url" in response.json()["error"]["message"]


async def test_an_unknown_method_is_404(base_url: str, client: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {SECRET}"}
    response = await client.post(f"{base_url}/internal/v1/links/drop_table", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_method"


# -- internal tokens -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "authorization", "status", "code"),
    [
        ("toy/forget", None, 401, "unauthenticated"),
        ("toy/forget", f"Basic {SECRET}", 401, "unauthenticated"),
        ("toy/forget", "Bearer", 401, "unauthenticated"),
        ("toy/forget", "Bearer not-the-secret", 403, "forbidden"),
        ("toy/forget", f"Bearer {SECRET}x", 403, "forbidden"),
        ("toy/no_such_method", None, 401, "unauthenticated"),  # strangers learn no names
        ("locked/forget", None, 401, "unauthenticated"),
        ("locked/forget", f"Bearer {SECRET}", 403, "forbidden"),  # no tokens: nobody gets in
    ],
)
async def test_internal_calls_need_a_known_token(
    base_url: str,
    client: httpx.AsyncClient,
    toy_service: ToyService,
    path: str,
    authorization: str | None,
    status: int,
    code: str,
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    before = toy_service.hits["intruder"]
    response = await client.post(
        f"{base_url}/internal/v1/{path}", json={"name": "intruder"}, headers=headers
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert SECRET not in response.text
    assert toy_service.hits["intruder"] == before
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


async def test_each_caller_is_known_by_its_own_token(
    base_url: str, client: httpx.AsyncClient, recorder: Recorder
) -> None:
    news = remote(Toy, "toy", base_url, TOKENS["news"], client)
    await news.forget("from-news")
    assert recorder.seen[-1] == ("/internal/v1/toy/forget", "news")


async def test_a_refused_token_is_an_internal_auth_error_never_retried(
    base_url: str, client: httpx.AsyncClient, recorder: Recorder
) -> None:
    for service, token in [("toy", "wrong"), ("locked", SECRET)]:
        stranger = remote(Toy, service, base_url, token, client, backoff=0.01)
        before = recorder.count(f"/internal/v1/{service}/read_flaky")
        with pytest.raises(InternalAuthError) as caught:
            await stranger.read_flaky("never")
        assert isinstance(caught.value, PermissionError)
        assert not isinstance(caught.value, DelinkciousError)
        assert token not in str(caught.value)
        assert recorder.count(f"/internal/v1/{service}/read_flaky") == before + 1
    assert "wrong" not in repr(stranger) and SECRET not in repr(stranger)


# -- retries, timeouts, outages ------------------------------------------------------------


async def test_an_idempotent_call_is_retried_through_a_503(
    toy: Toy, toy_service: ToyService
) -> None:
    assert await toy.read_flaky("read-1") == 2
    assert toy_service.hits["read-1"] == 2


async def test_a_non_idempotent_call_is_not_retried_through_a_503(
    toy: Toy, toy_service: ToyService
) -> None:
    with pytest.raises(Unavailable, match="warming up"):
        await toy.write_flaky("write-1")
    assert toy_service.hits["write-1"] == 1
    assert await toy.write_flaky("write-1") == 2


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_trouble_without_a_body_is_unavailable(
    base_url: str, client: httpx.AsyncClient, recorder: Recorder, status: int
) -> None:
    behind_proxy = remote(Toy, f"bare-{status}", base_url, SECRET, client, backoff=0.01)
    path = f"/internal/v1/bare-{status}"
    with pytest.raises(Unavailable):
        await behind_proxy.read_flaky("x")
    assert recorder.count(f"{path}/read_flaky") == 4  # the first try and 3 retries
    with pytest.raises(Unavailable):
        await behind_proxy.write_flaky("x")
    assert recorder.count(f"{path}/write_flaky") == 1


@pytest.mark.parametrize(
    ("status", "error"), [(401, InternalAuthError), (500, RemoteError), (418, RemoteError)]
)
async def test_other_bodiless_statuses(
    base_url: str, client: httpx.AsyncClient, status: int, error: type[Exception]
) -> None:
    behind_proxy = remote(Toy, f"bare-{status}", base_url, SECRET, client, backoff=0.01)
    with pytest.raises(error):
        await behind_proxy.read_flaky("x")


async def test_an_idempotent_call_waits_for_a_server_starting_late(
    toy_service: ToyService, client: httpx.AsyncClient
) -> None:
    sock = bound_socket()  # bound, not listening yet: connections are refused
    app = FastAPI()
    app.include_router(internal_router("toy", Toy, toy_service, TOKENS))
    late = remote(Toy, "toy", url_of(sock), SECRET, client, retries=5, backoff=0.05)
    call = asyncio.create_task(late.read_flaky("late-read"))
    await asyncio.sleep(0.1)
    assert not call.done()
    async with serving(app, sock):
        assert await call == 2  # refused, refused, ..., 503 (warming up), 2


async def test_a_request_that_never_left_is_retried_for_any_method(
    toy_service: ToyService, client: httpx.AsyncClient
) -> None:
    """Connection refused means the server saw nothing: a retry cannot do anything twice."""
    sock = bound_socket()
    app = FastAPI()
    app.include_router(internal_router("toy", Toy, toy_service, TOKENS))
    late = remote(Toy, "toy", url_of(sock), SECRET, client, retries=5, backoff=0.05)
    call = asyncio.create_task(late.forget("late-write"))
    await asyncio.sleep(0.1)
    async with serving(app, sock):
        assert await returned(call) is None
    assert toy_service.hits["late-write"] == 1


async def test_a_server_that_stays_down_is_unavailable(client: httpx.AsyncClient) -> None:
    sock = bound_socket()
    down = remote(Toy, "toy", url_of(sock), SECRET, client, retries=2, backoff=0.01)
    with pytest.raises(Unavailable) as caught:
        await down.read_flaky("down")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "127.0.0.1" not in caught.value.message  # it may reach end users: no addresses
    sock.close()


async def test_timeouts_are_unavailable_and_retried_only_when_idempotent(
    base_url: str, toy_service: ToyService
) -> None:
    async with make_client(timeout=0.1) as impatient:
        slow = remote(Toy, "toy", base_url, SECRET, impatient, retries=1, backoff=0.01)
        with pytest.raises(Unavailable) as caught:
            await slow.slow_write("slow-write", 0.4)
        assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
        assert toy_service.hits["slow-write"] == 1
        with pytest.raises(Unavailable):
            await slow.slow("slow-read", 0.4)
        assert toy_service.hits["slow-read"] == 2


# -- concurrency, tracing ------------------------------------------------------------------


async def test_fifty_parallel_calls_share_a_small_pool(base_url: str) -> None:
    queries = [Query(f"q{n}", frozenset({Colour.RED, Colour.BLUE}), T0) for n in range(50)]
    service = ToyService()
    async with make_client(max_connections=8) as pooled:
        toy = remote(Toy, "toy", base_url, SECRET, pooled)
        results = await asyncio.gather(*(toy.find(query) for query in queries))
    assert results == [await service.find(query) for query in queries]


async def test_fifty_parallel_link_pages(links: LinkManager, link_service: LinkService) -> None:
    await links.add_link(AddLinkRequest("dave", "https://dave.example/", "Dave's"))
    expected = await link_service.get_links(GetLinksRequest("dave"))
    pages = await asyncio.gather(*(links.get_links(GetLinksRequest("dave")) for _ in range(50)))
    assert pages == [expected] * 50


async def test_the_trace_context_crosses_the_call(toy: Toy) -> None:
    caller = trace.SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    with trace.use_span(trace.NonRecordingSpan(caller)):
        assert await toy.trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert await toy.trace_id() == "0" * 32  # no caller span, no trace
