"""The tracing middleware (a span per Protocol call), the HTTP server span, and the setup."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from delinkcious.model.errors import NotFound
from delinkcious.model.markers import idempotent, is_idempotent
from delinkcious.platform import tracing as tracing_setup
from delinkcious.platform.middleware import wrap
from delinkcious.platform.middleware.tracing import tracing_middleware
from delinkcious.platform.trace_context import current_trace_context


@runtime_checkable
class Greeter(Protocol):
    async def greet(self, name: str) -> str:
        """Say hello."""
        ...

    @idempotent
    async def find(self, name: str) -> str: ...


class Core:
    def __init__(self) -> None:
        self.seen_context: dict[str, str] = {}

    async def greet(self, name: str) -> str:
        self.seen_context = current_trace_context()
        return f"hello {name}"

    async def find(self, name: str) -> str:
        raise NotFound(f"no {name}", code="no_such_name")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[trace.Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test")
    provider.shutdown()


async def test_every_call_gets_a_span_named_service_dot_method(exporter, tracer) -> None:
    core = Core()
    greeter = wrap(Greeter, "greeter", core, tracing_middleware(tracer))
    assert await greeter.greet("ada") == "hello ada"
    assert await greeter.greet(name="bob") == "hello bob"
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["greeter.greet", "greeter.greet"]
    span = spans[0]
    assert span.kind is SpanKind.INTERNAL
    assert span.attributes == {"delinkcious.service": "greeter", "delinkcious.method": "greet"}
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is None
    # The span is current during the call: what it sends on (events, remote calls) joins it.
    traceparent = core.seen_context["traceparent"]
    assert traceparent.split("-")[1:3] == [
        trace.format_trace_id(spans[1].context.trace_id),
        trace.format_span_id(spans[1].context.span_id),
    ]


async def test_calls_nest_under_the_current_span(exporter, tracer) -> None:
    greeter = wrap(Greeter, "greeter", Core(), tracing_middleware(tracer))
    with tracer.start_as_current_span("request") as outer:
        await greeter.greet("ada")
    inner = exporter.get_finished_spans()[0]
    assert inner.parent is not None
    assert inner.parent.span_id == outer.get_span_context().span_id
    assert inner.context.trace_id == outer.get_span_context().trace_id


async def test_a_failure_marks_the_span_and_passes_the_same_exception(exporter, tracer) -> None:
    greeter = wrap(Greeter, "greeter", Core(), tracing_middleware(tracer))
    with pytest.raises(NotFound) as raised:
        await greeter.find("nobody")
    assert raised.value.code == "no_such_name"
    assert raised.value.message == "no nobody"
    assert raised.traceback[-1].name == "find"  # raised by the core, not re-made on the way
    (span,) = exporter.get_finished_spans()
    assert span.name == "greeter.find"
    assert span.status.status_code is StatusCode.ERROR
    assert "NotFound" in (span.status.description or "")
    assert span.attributes["error.type"] == "NotFound"
    (recorded,) = span.events
    assert recorded.name == "exception"
    assert recorded.attributes["exception.type"].endswith("NotFound")


async def test_the_wrapped_object_still_implements_the_protocol(tracer) -> None:
    greeter = wrap(Greeter, "greeter", Core(), tracing_middleware(tracer))
    assert isinstance(greeter, Greeter)
    assert greeter.greet.__doc__ == "Say hello."
    assert is_idempotent(greeter.find)
    assert not is_idempotent(greeter.greet)


async def test_without_a_provider_calls_pass_through_and_nothing_records() -> None:
    assert tracing_setup.active_tracer() is None  # no setup_tracing in the unit tests
    core = Core()
    greeter = wrap(Greeter, "greeter", core, tracing_middleware())
    assert await greeter.greet("ada") == "hello ada"
    assert core.seen_context == {}  # no span was made current, none is carried on
    assert not trace.get_current_span().is_recording()
    with pytest.raises(NotFound):
        await greeter.find("nobody")


async def test_a_sampled_out_call_records_nothing_but_keeps_the_decision(exporter) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    core = Core()
    greeter = wrap(Greeter, "greeter", core, tracing_middleware(provider.get_tracer("t")))
    await greeter.greet("ada")
    assert exporter.get_finished_spans() == ()
    flags = int(core.seen_context["traceparent"].rsplit("-", 1)[1], 16)
    assert not flags & 0x01  # the children are not sampled either


# --- the SERVER span of the public HTTP API ---------------------------------------------
# FastAPI makes it itself once a provider is installed; the gateway relies on that.


async def test_the_gateway_gets_a_server_span_per_route_continuing_w3c_context(exporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI(telemetry={"tracer_provider": provider, "operation_spans": False})
    seen: dict[str, str] = {}

    @app.post("/v1/things/{name}")
    async def thing(name: str) -> JSONResponse:
        seen.update(current_trace_context())
        return JSONResponse({}, status_code=201)

    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        headers = {"traceparent": f"00-{trace_id}-{span_id}-01"}
        assert (await client.post("/v1/things/a", headers=headers)).status_code == 201
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == "POST /v1/things/{name}"  # the route template, never the raw path
    assert trace.format_trace_id(span.context.trace_id) == trace_id
    assert span.parent is not None and trace.format_span_id(span.parent.span_id) == span_id
    # Current while the handler runs: its remote calls carry it on.
    assert trace.format_span_id(span.context.span_id) in seen["traceparent"]
    provider.shutdown()


# --- setup from the standard variables --------------------------------------------------


def test_the_exporter_defaults_to_the_shape_and_the_variable_overrides_it(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    assert tracing_setup.exporters_from_env() == ()
    assert tracing_setup.exporters_from_env("otlp") == ("otlp",)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing_setup.exporters_from_env("otlp") == ()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", " OTLP , console ")
    assert tracing_setup.exporters_from_env() == ("otlp", "console")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing_setup.exporters_from_env() == ()


def test_the_default_exporter_per_shape(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing_setup.default_exporter("processes") == "none"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing_setup.default_exporter("processes") == "otlp"
    assert tracing_setup.default_exporter("embedded") == "none"


@pytest.mark.parametrize("value", ["jaeger", "zipkin", "otlp,none"])
def test_an_unknown_exporter_is_a_configuration_error(monkeypatch, value: str) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    with pytest.raises(tracing_setup.TracingConfigurationError, match="OTEL_TRACES_EXPORTER"):
        tracing_setup.exporters_from_env()


def test_setup_with_exporter_none_installs_nothing(monkeypatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing_setup.setup_tracing("links", default_exporter="otlp") is None
    assert tracing_setup.active_tracer() is None
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    tracing_setup.shutdown_tracing()  # harmless when nothing was set up


def test_the_provider_names_the_service_and_reads_the_sampler(monkeypatch) -> None:
    from delinkcious import __version__

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    provider = tracing_setup.build_provider("links", ("console",))
    try:
        assert provider.resource.attributes["service.name"] == "links"
        assert provider.resource.attributes["service.version"] == __version__
        assert "0.25" in provider.sampler.get_description()
    finally:
        provider.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "links-canary")
    provider = tracing_setup.build_provider("links", ("otlp",))
    try:
        assert provider.resource.attributes["service.name"] == "links-canary"
    finally:
        provider.shutdown()


def test_trace_context_propagates_without_the_sdk() -> None:
    # The API alone still carries a context it was given (the embedded shape, tracing off).
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    extracted = propagate.extract(carrier)
    assert trace.get_current_span(extracted).get_span_context().is_valid


async def test_inside_an_unsampled_trace_no_child_span_is_made() -> None:
    """Sampling off must cost next to nothing: the parent's context simply carries on."""

    class NoSpans:
        def start_span(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("no span should be started inside an unsampled trace")

    core = Core()
    greeter = wrap(Greeter, "greeter", core, tracing_middleware(NoSpans()))  # type: ignore[arg-type]
    unsampled = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=True,
            trace_flags=trace.TraceFlags(0),
        )
    )
    with trace.use_span(unsampled):
        assert await greeter.greet("ada") == "hello ada"
    # The unsampled context reached the core, so calls it makes carry it on.
    assert core.seen_context["traceparent"].endswith("-b7ad6b7169203331-00")
