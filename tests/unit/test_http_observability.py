"""The gateway's HTTP view: an access-log line, a server span and metrics per request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from delinkcious.gateway.http_observability import HttpObservabilityMiddleware
from delinkcious.platform.trace_context import current_trace_context
from tests.support.logs import Captured, assert_line_fields, restored_logging

TOKEN = "tok_0123456789abcdef"


@pytest.fixture
def logs() -> Iterator[Captured]:
    with restored_logging():
        captured = Captured()
        captured.setup(service="gateway", level="INFO")
        yield captured


def toy_app(tracer: trace.Tracer | None = None) -> FastAPI:
    app = FastAPI()
    v1 = APIRouter(prefix="/v1")

    @v1.get("/links/{link_id}")
    async def get_link(link_id: int, request: Request) -> dict[str, int]:
        request.state.user = "alice"  # what gateway.auth.authenticate does
        return {"id": link_id}

    @v1.post("/things/{name}")
    async def thing(name: str, request: Request) -> JSONResponse:
        request.state.seen = current_trace_context()
        return JSONResponse(request.state.seen, status_code=201)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app.include_router(v1)
    app.add_middleware(HttpObservabilityMiddleware, tracer=tracer)
    return app


@pytest.fixture
async def client(logs: Captured) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=toy_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


# --- the access log ---------------------------------------------------------------------


async def test_one_line_per_request_with_the_route_template_and_user(
    logs: Captured, client: httpx.AsyncClient
) -> None:
    response = await client.get(
        f"/v1/links/42?start_token={TOKEN}", headers={"Access-Token": TOKEN}
    )
    assert response.status_code == 200
    [record] = logs.records()
    assert_line_fields(record)
    assert record["event"] == "request"
    assert record["level"] == "info"
    assert record["service"] == "gateway"
    assert record["http_method"] == "GET"
    assert record["route"] == "/v1/links/{link_id}"
    assert record["status"] == 200
    assert record["user"] == "alice"
    assert record["client"] == "127.0.0.1"
    assert isinstance(record["duration_ms"], float)
    assert record["called_from"].startswith("delinkcious.gateway.http_observability:")
    assert "42" not in record["route"]
    assert TOKEN not in logs.text  # neither the query string nor a header is logged


async def test_unknown_routes_and_wrong_methods(logs: Captured, client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/nothing/here/99")).status_code == 404
    assert (await client.delete("/v1/links/7")).status_code == 405
    unmatched, wrong_method = logs.records()
    assert (unmatched["route"], unmatched["status"], unmatched["user"]) == ("unmatched", 404, None)
    assert (wrong_method["route"], wrong_method["status"]) == ("/v1/links/{link_id}", 405)


async def test_a_non_standard_method_is_scrubbed_like_any_untrusted_text(
    logs: Captured, client: httpx.AsyncClient
) -> None:
    assert (await client.request(f"TOKEN={TOKEN}", "/v1/links/1")).status_code == 405
    [record] = logs.records()
    assert record["http_method"] == "TOKEN=[redacted]"
    assert TOKEN not in logs.text


async def test_an_unhandled_error_is_a_500_line_at_error_level(
    logs: Captured, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/boom")).status_code == 500
    [record] = [record for record in logs.records() if record["event"] == "request"]
    assert (record["route"], record["status"], record["level"]) == ("/boom", 500, "error")


async def test_nothing_is_written_when_info_is_filtered_out(logs: Captured) -> None:
    logs.setup(service="gateway", level="WARNING")
    transport = httpx.ASGITransport(app=toy_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as quiet:
        assert (await quiet.get("/v1/links/1")).status_code == 200
    assert logs.text == ""


async def test_the_console_format_gets_the_same_fields(logs: Captured) -> None:
    logs.setup(service="gateway", level="INFO", fmt="console")
    transport = httpx.ASGITransport(app=toy_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        assert (await client.get("/v1/links/1")).status_code == 200
    [line] = logs.lines()
    assert "request" in line
    for field in ("http_method=GET", "route=/v1/links/{link_id}", "status=200", "user=alice"):
        assert field in line, line


# --- the server span --------------------------------------------------------------------


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def tracer_for(exporter: InMemorySpanExporter, **provider_options: object) -> trace.Tracer:
    provider = TracerProvider(**provider_options)  # type: ignore[arg-type]
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


TRACE_ID, SPAN_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


async def post_thing(app: FastAPI, flags: str | None = None) -> httpx.Response:
    """``POST /v1/things/a``, with a W3C ``traceparent`` of those flags when given."""
    headers = {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-{flags}"} if flags else {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.post("/v1/things/a", headers=headers)
    assert response.status_code == 201
    return response


async def test_a_server_span_per_route_continuing_w3c_context(
    logs: Captured, exporter: InMemorySpanExporter
) -> None:
    response = await post_thing(toy_app(tracer_for(exporter)), flags="01")
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == "POST /v1/things/{name}"  # the route template, never the raw path
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/v1/things/{name}"
    assert span.attributes["http.response.status_code"] == 201
    assert span.attributes["delinkcious.service"] == "gateway"
    assert trace.format_trace_id(span.context.trace_id) == TRACE_ID
    assert span.parent is not None and trace.format_span_id(span.parent.span_id) == SPAN_ID
    # Current while the handler runs, so its remote calls carry it on ...
    assert trace.format_span_id(span.context.span_id) in response.json()["traceparent"]
    # ... and while the access log is written.
    [record] = logs.records()
    assert (record["trace_id"], record["span_id"]) == (
        TRACE_ID,
        trace.format_span_id(span.context.span_id),
    )


async def test_a_failed_request_marks_its_span_as_an_error(
    logs: Captured, exporter: InMemorySpanExporter
) -> None:
    app = toy_app(tracer_for(exporter))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/boom")).status_code == 500
        assert (await client.get("/nowhere")).status_code == 404
    boom, nowhere = exporter.get_finished_spans()
    assert boom.name == "GET /boom" and boom.status.status_code is StatusCode.ERROR
    assert [event.name for event in boom.events] == ["exception"]
    assert nowhere.name == "GET"  # no route matched: no template to name it by
    assert nowhere.status.status_code is StatusCode.UNSET


async def test_an_untraced_request_starts_no_span_when_the_sampler_would_drop_it(
    logs: Captured, exporter: InMemorySpanExporter
) -> None:
    response = await post_thing(toy_app(tracer_for(exporter, sampler=ALWAYS_OFF)))
    assert exporter.get_finished_spans() == ()
    assert response.json() == {}  # no context reached the handler: none is carried on
    [record] = logs.records()
    assert (record["trace_id"], record["span_id"]) == (None, None)


async def test_an_unsampled_callers_context_carries_on_without_a_span_here(
    logs: Captured, exporter: InMemorySpanExporter
) -> None:
    # The default sampler is parent-based: it follows the caller's decision.
    response = await post_thing(toy_app(tracer_for(exporter)), flags="00")
    assert exporter.get_finished_spans() == ()
    assert response.json()["traceparent"] == f"00-{TRACE_ID}-{SPAN_ID}-00"
    [record] = logs.records()
    assert (record["trace_id"], record["span_id"]) == (TRACE_ID, SPAN_ID)
