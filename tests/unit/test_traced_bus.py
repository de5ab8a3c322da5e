"""``TracedBus``: events carry the trace across the bus, PRODUCER and CONSUMER spans join it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from delinkcious.model.events import Event, EventType
from delinkcious.platform.bus import MemoryBus
from delinkcious.platform.trace_context import current_trace_context
from delinkcious.platform.traced_bus import TracedBus


class Service:
    """One process's tracer and what it exported (two of these stand for two processes)."""

    def __init__(self, name: str) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": name}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test")

    def spans(self, kind: SpanKind | None = None) -> list[ReadableSpan]:
        found = self.exporter.get_finished_spans()
        return [span for span in found if kind is None or span.kind is kind]


class JsonBus(MemoryBus):
    """The in-process bus, but each event crosses as JSON, as through NATS."""

    async def publish(self, event: Event) -> None:
        await super().publish(Event.from_json(event.to_json()))


@pytest.fixture
def links() -> Iterator[Service]:
    service = Service("links")
    yield service
    service.provider.shutdown()


@pytest.fixture
def news() -> Iterator[Service]:
    service = Service("news")
    yield service
    service.provider.shutdown()


def added(
    *,
    title: str = "",
    tags: tuple[str, ...] = (),
    trace: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    return Event(
        type=EventType.LINK_ADDED,
        author="ada",
        url="https://example.com/",
        title=title,
        tags=tags,
        trace={} if trace is None else trace,
        data={} if data is None else data,
    )


def ids(span: ReadableSpan) -> tuple[int, int]:
    return span.context.trace_id, span.context.span_id


async def test_the_consumer_joins_the_trace_of_the_request_that_caused_the_event(
    links: Service, news: Service
) -> None:
    wire = JsonBus(initial_backoff=0.001)
    seen: list[dict[str, str]] = []

    async def handle(event: Event) -> None:
        seen.append(current_trace_context())  # what the handler's own calls would carry

    await TracedBus(wire, news.tracer).subscribe("news", [EventType.LINK_ADDED], handle)
    with links.tracer.start_as_current_span("links.add_link") as request:
        event = added(trace=current_trace_context())  # as LinkService makes it
    # The outbox relay publishes later, with no span current.
    assert not trace.get_current_span().get_span_context().is_valid
    await TracedBus(wire, links.tracer).publish(event)

    (producer,) = links.spans(SpanKind.PRODUCER)
    (consumer,) = news.spans(SpanKind.CONSUMER)
    assert producer.name == "publish link.added"
    assert consumer.name == "news handle link.added"
    trace_id = request.get_span_context().trace_id
    assert producer.context.trace_id == consumer.context.trace_id == trace_id
    assert producer.parent is not None
    assert producer.parent.span_id == request.get_span_context().span_id
    assert consumer.parent is not None and consumer.parent.is_remote
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.attributes is not None
    assert consumer.attributes["messaging.message.id"] == event.id
    assert consumer.attributes["messaging.consumer.group.name"] == "news"
    # Inside the handler the CONSUMER span is current: its remote calls join the trace.
    assert seen[0]["traceparent"].split("-")[1:3] == [
        trace.format_trace_id(trace_id),
        trace.format_span_id(consumer.context.span_id),
    ]


async def test_a_consumer_span_is_parented_from_the_event_trace_alone(news: Service) -> None:
    # The producer side is not traced (another version, tracing off there): the consumer
    # still continues the context the event carries.
    bus = MemoryBus()
    await TracedBus(bus, news.tracer).subscribe("news", [EventType.LINK_ADDED], _nothing)
    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    await bus.publish(added(trace={"traceparent": f"00-{trace_id}-{span_id}-01"}))
    (consumer,) = news.spans()
    assert trace.format_trace_id(consumer.context.trace_id) == trace_id
    assert consumer.parent is not None
    assert trace.format_span_id(consumer.parent.span_id) == span_id


async def test_the_event_keeps_its_id_and_content(links: Service) -> None:
    bus = MemoryBus()
    received: list[Event] = []

    async def keep(event: Event) -> None:
        received.append(event)

    await bus.subscribe("news", [EventType.LINK_ADDED], keep)
    event = added(title="t", tags=("a",), data={"k": 1})
    await TracedBus(bus, links.tracer).publish(event)
    (got,) = received
    assert (got.id, got.type, got.author, got.url, got.title, got.tags, got.time, got.data) == (
        event.id,
        event.type,
        event.author,
        event.url,
        event.title,
        event.tags,
        event.time,
        event.data,
    )
    # An event made with no trace context starts one at its publication.
    (producer,) = links.spans()
    assert producer.parent is None
    assert trace.format_span_id(producer.context.span_id) in got.trace["traceparent"]


async def test_a_span_current_in_the_same_trace_is_the_more_precise_parent(links: Service) -> None:
    # The link checker publishes link.checked (carrying its cause's context) from inside its
    # CONSUMER span of that trace.
    bus = TracedBus(MemoryBus(), links.tracer)
    with links.tracer.start_as_current_span("cause"):
        cause = current_trace_context()
    within = propagate.extract(cause)
    with links.tracer.start_as_current_span("checker handles", context=within) as handling:
        await bus.publish(
            Event(type=EventType.LINK_CHECKED, author="ada", url="https://e.com/", trace=cause)
        )
    (producer,) = links.spans(SpanKind.PRODUCER)
    assert producer.parent is not None
    assert producer.parent.span_id == handling.get_span_context().span_id


async def test_the_event_trace_wins_over_a_current_span_of_another_trace(links: Service) -> None:
    bus = TracedBus(MemoryBus(), links.tracer)
    with links.tracer.start_as_current_span("request") as request:
        event = added(trace=current_trace_context())
    with links.tracer.start_as_current_span("unrelated"):
        await bus.publish(event)
    (producer,) = links.spans(SpanKind.PRODUCER)
    assert producer.context.trace_id == request.get_span_context().trace_id
    assert producer.parent is not None
    assert producer.parent.span_id == request.get_span_context().span_id


async def test_a_failing_handler_is_an_error_span_and_the_event_comes_again(
    news: Service,
) -> None:
    bus = MemoryBus(initial_backoff=0.001)
    failures = [RuntimeError("store down")]

    async def flaky(event: Event) -> None:
        if failures:
            raise failures.pop()

    await TracedBus(bus, news.tracer).subscribe("news", [EventType.LINK_ADDED], flaky)
    await bus.publish(added())
    first, second = news.spans()
    assert first.status.status_code is StatusCode.ERROR
    assert first.events[0].attributes is not None
    assert first.events[0].attributes["exception.type"] == "RuntimeError"
    assert second.status.status_code is StatusCode.UNSET


async def test_a_failed_publish_is_an_error_span_and_raises(links: Service) -> None:
    inner = MemoryBus()
    await inner.close()
    with pytest.raises(ConnectionError):
        await TracedBus(inner, links.tracer).publish(added())
    (producer,) = links.spans()
    assert producer.status.status_code is StatusCode.ERROR


async def test_without_a_tracer_events_pass_untouched() -> None:
    bus = MemoryBus()
    received: list[Event] = []

    async def keep(event: Event) -> None:
        received.append(event)
        assert current_trace_context() == {}

    traced = TracedBus(bus)
    await traced.subscribe("news", [EventType.LINK_ADDED], keep, concurrency=2)
    event = added(trace={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    await traced.publish(event)
    assert received == [event] and received[0] is event
    await traced.close()
    with pytest.raises(ConnectionError):
        await traced.publish(added())


async def _nothing(event: Event) -> None:
    return None


def test_the_w3c_fields_are_what_events_carry() -> None:
    assert {"traceparent", "tracestate"} <= propagate.get_global_textmap().fields


async def test_spans_the_sampler_would_drop_are_not_started_and_the_trace_carries_on() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("test")
    wire = JsonBus(initial_backoff=0.001)
    seen: list[dict[str, str]] = []

    async def handle(event: Event) -> None:
        seen.append(current_trace_context())

    await TracedBus(wire, tracer).subscribe("news", [EventType.LINK_ADDED], handle)
    unsampled = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
    await TracedBus(wire, tracer).publish(added())  # no trace: none begins here
    await TracedBus(wire, tracer).publish(added(trace=unsampled))  # carried on as it came
    assert seen == [{}, unsampled]
