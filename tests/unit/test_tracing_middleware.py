"""The tracing middleware (a span per Protocol call) and the setup.

The gateway's HTTP server span is tested with the rest of its HTTP view
(``test_http_observability``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider, sampling
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


async def test_every_call_gets_a_span_named_service_dot_method(
    exporter: InMemorySpanExporter, tracer: trace.Tracer
) -> None:
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


async def test_calls_nest_under_the_current_span(
    exporter: InMemorySpanExporter, tracer: trace.Tracer
) -> None:
    greeter = wrap(Greeter, "greeter", Core(), tracing_middleware(tracer))
    with tracer.start_as_current_span("request") as outer:
        await greeter.greet("ada")
    inner = exporter.get_finished_spans()[0]
    assert inner.parent is not None
    assert inner.parent.span_id == outer.get_span_context().span_id
    assert inner.context.trace_id == outer.get_span_context().trace_id


async def test_a_failure_marks_the_span_and_passes_the_same_exception(
    exporter: InMemorySpanExporter, tracer: trace.Tracer
) -> None:
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
    assert span.attributes is not None
    assert span.attributes["error.type"] == "NotFound"
    (recorded,) = span.events
    assert recorded.name == "exception"
    assert recorded.attributes is not None
    exception_type = recorded.attributes["exception.type"]
    assert isinstance(exception_type, str)
    assert exception_type.endswith("NotFound")


async def test_the_wrapped_object_still_implements_the_protocol(tracer: trace.Tracer) -> None:
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


class CountingTracer:
    """A real SDK tracer that counts the spans asked of it."""

    def __init__(self, sampler: sampling.Sampler, exporter: InMemorySpanExporter) -> None:
        provider = TracerProvider(sampler=sampler)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        self._tracer = provider.get_tracer("t")
        self.sampler = sampler
        self.started = 0

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        self.started += 1
        return self._tracer.start_span(*args, **kwargs)


@pytest.mark.parametrize(
    "sampler", [sampling.ALWAYS_OFF, sampling.ParentBased(sampling.ALWAYS_OFF)], ids=str
)
async def test_a_root_the_sampler_never_samples_is_not_even_started(
    exporter: InMemorySpanExporter, sampler: sampling.Sampler
) -> None:
    tracer = CountingTracer(sampler, exporter)
    core = Core()
    greeter = wrap(Greeter, "greeter", core, tracing_middleware(tracer))  # type: ignore[arg-type]
    assert await greeter.greet("ada") == "hello ada"
    assert tracer.started == 0
    assert core.seen_context == {}  # as with tracing off: no trace begins here
    assert exporter.get_finished_spans() == ()


async def test_under_a_sampled_parent_the_sampler_still_decides(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = CountingTracer(sampling.ALWAYS_OFF, exporter)
    core = Core()
    greeter = wrap(Greeter, "greeter", core, tracing_middleware(tracer))  # type: ignore[arg-type]
    sampled = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
    )
    with trace.use_span(sampled):
        await greeter.greet("ada")
    assert tracer.started == 1 and exporter.get_finished_spans() == ()
    _, trace_id, span_id, flags = core.seen_context["traceparent"].split("-")
    assert trace_id == "0af7651916cd43dd8448eb211c80319c" and span_id != "b7ad6b7169203331"
    assert not int(flags, 16) & 0x01  # dropped here, so not sampled further on either


@pytest.mark.parametrize(
    ("sampler", "root", "unsampled_child", "sampled_child"),
    [
        (sampling.ALWAYS_ON, True, True, True),
        (sampling.ALWAYS_OFF, False, False, True),
        (sampling.ParentBased(sampling.ALWAYS_ON), True, False, True),
        (sampling.ParentBased(sampling.ALWAYS_OFF), False, False, True),
        (sampling.TraceIdRatioBased(0.0), False, False, True),
        (sampling.TraceIdRatioBased(0.001), True, True, True),
        (sampling.ParentBasedTraceIdRatio(0.0), False, False, True),
        (sampling.ParentBasedTraceIdRatio(0.001), True, False, True),
    ],
    ids=lambda value: value.get_description() if isinstance(value, sampling.Sampler) else None,
)
def test_a_span_is_worth_starting_when_its_sampler_could_keep_it(
    sampler: sampling.Sampler, root: bool, unsampled_child: bool, sampled_child: bool
) -> None:
    tracer = TracerProvider(sampler=sampler).get_tracer("t")

    def parent(flags: int) -> trace.SpanContext:
        return trace.SpanContext(7, 9, is_remote=True, trace_flags=trace.TraceFlags(flags))

    assert tracing_setup.worth_a_span(tracer, trace.INVALID_SPAN_CONTEXT) is root
    assert tracing_setup.worth_a_span(tracer, parent(0)) is unsampled_child
    assert tracing_setup.worth_a_span(tracer, parent(1)) is sampled_child


def test_the_current_span_context_is_what_opentelemetry_says_it_is() -> None:
    assert tracing_setup.current_span_context() is None
    assert not trace.get_current_span().get_span_context().is_valid
    tracer = TracerProvider().get_tracer("t")
    remote = trace.SpanContext(7, 9, is_remote=True, trace_flags=trace.TraceFlags(1))
    for span in (tracer.start_span("recorded"), trace.NonRecordingSpan(remote)):
        with trace.use_span(span, end_on_exit=True):
            assert tracing_setup.current_span_context() == span.get_span_context()
            assert trace.get_current_span().get_span_context() == span.get_span_context()
    assert tracing_setup.current_span_context() is None


def test_the_context_is_read_from_its_variable_only_under_the_default_runtime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import context

    assert tracing_setup._context_getter() is not context.get_current  # the variable's get
    assert tracing_setup._context_getter()() is context.get_current()
    monkeypatch.setattr(context, "_RUNTIME_CONTEXT", object())  # another runtime context
    assert tracing_setup._context_getter() is context.get_current


def test_a_sampler_of_another_kind_is_assumed_to_sample_roots_and_follow_parents() -> None:
    class ByName(sampling.Sampler):
        def should_sample(self, *args: Any, **kwargs: Any) -> sampling.SamplingResult:
            return sampling.SamplingResult(sampling.Decision.DROP)

        def get_description(self) -> str:
            return "ByName"

    tracer = TracerProvider(sampler=ByName()).get_tracer("t")
    unsampled = trace.SpanContext(7, 9, is_remote=True, trace_flags=trace.TraceFlags(0))
    assert tracing_setup.worth_a_span(tracer, trace.INVALID_SPAN_CONTEXT)
    assert not tracing_setup.worth_a_span(tracer, unsampled)


# --- setup from the standard variables --------------------------------------------------


def test_the_exporter_defaults_to_the_shape_and_the_variable_overrides_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
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


def test_the_default_exporter_per_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing_setup.default_exporter("processes") == "none"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing_setup.default_exporter("processes") == "otlp"
    assert tracing_setup.default_exporter("embedded") == "none"


@pytest.mark.parametrize("value", ["jaeger", "zipkin", "otlp,none"])
def test_an_unknown_exporter_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    with pytest.raises(tracing_setup.TracingConfigurationError, match="OTEL_TRACES_EXPORTER"):
        tracing_setup.exporters_from_env()


def test_setup_with_exporter_none_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing_setup.setup_tracing("links", default_exporter="otlp") is None
    assert tracing_setup.active_tracer() is None
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    tracing_setup.shutdown_tracing()  # harmless when nothing was set up


def test_the_provider_names_the_service_and_reads_the_sampler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
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
