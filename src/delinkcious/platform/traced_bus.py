"""``TracedBus``: any ``Bus`` with W3C trace context carried by the events themselves.

An event's ``trace`` holds the context of the request that caused it (``LinkService``
puts ``current_trace_context()`` there). Publishing runs in a PRODUCER span whose parent
is that context (the outbox relay publishes later, outside the request: without this the
trace would stop at links), and the event goes out carrying the PRODUCER span's context.
Each delivery runs in a CONSUMER span ``<consumer> handle <type>`` whose parent is the
context the event carries, so whatever the handler calls (news asks the social graph for
followers) stays in the request's trace: gateway → links → relay → news, link_checker.

The event keeps its id: brokers and consumers dedupe by id, never by content. With no
tracer set up, events pass through untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from delinkcious.model.events import Event, EventType
from delinkcious.platform.bus import Bus, Handler
from delinkcious.platform.tracing import active_tracer, worth_a_span

SYSTEM = "delinkcious"


def _event_context(event: Event) -> Context | None:
    """The context ``event.trace`` carries, or ``None`` when it carries no valid span."""
    if not event.trace:
        return None
    extracted = propagate.extract(event.trace, context=Context())
    if not trace.get_current_span(extracted).get_span_context().is_valid:
        return None
    return extracted


def _producer_parent(event: Event) -> Context | None:
    """The event's own context, unless the span current here is in that same trace.

    The relay publishes with no span current: the event's context is the parent. The
    link checker publishes ``link.checked`` (carrying its cause's context) from inside
    its CONSUMER span of that trace: that span, more precise, is the parent. ``None``
    means the current context.
    """
    carried = _event_context(event)
    if carried is None:
        return None
    current = trace.get_current_span().get_span_context()
    carried_trace = trace.get_current_span(carried).get_span_context().trace_id
    if current.is_valid and current.trace_id == carried_trace:
        return None
    return carried


@contextlib.contextmanager
def _current_span(
    tracer: trace.Tracer,
    name: str,
    parent: Context | None,
    kind: SpanKind,
    attributes: dict[str, str],
) -> Iterator[tuple[trace.Span, Context]]:
    """A span made current for the block, marked failed if the block raises, then ended.

    When the sampler is sure to drop it (``worth_a_span``), no span: the parent's context
    is made current as it is (its span is what the block gets), so the trace carries on.
    """
    if not worth_a_span(tracer, trace.get_current_span(parent).get_span_context()):
        under = parent if parent is not None else context.get_current()
        token = context.attach(under)
        try:
            yield trace.get_current_span(under), under
        finally:
            context.detach(token)
        return
    span = tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
    here = trace.set_span_in_context(span, parent)
    token = context.attach(here)
    try:
        yield span, here
    except Exception as exc:
        if span.is_recording():
            span.record_exception(exc)
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        context.detach(token)
        span.end()


class TracedBus:
    """Implements ``Bus`` over ``inner``, with PRODUCER and CONSUMER spans per event."""

    def __init__(self, inner: Bus, tracer: trace.Tracer | None = None) -> None:
        self.inner = inner
        self._tracer = tracer

    def __repr__(self) -> str:
        return f"TracedBus({self.inner!r})"

    def _active(self) -> trace.Tracer | None:
        return self._tracer if self._tracer is not None else active_tracer()

    async def publish(self, event: Event) -> None:
        tracer = self._active()
        if tracer is None:
            await self.inner.publish(event)
            return
        attributes = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.destination.name": event.type.value,
            "messaging.message.id": event.id,
        }
        parent = _producer_parent(event)
        with _current_span(
            tracer, f"publish {event.type}", parent, SpanKind.PRODUCER, attributes
        ) as (span, here):
            if span.get_span_context().is_valid:
                carrier: dict[str, str] = {}
                propagate.inject(carrier, context=here)
                event = dataclasses.replace(event, trace=carrier)
            await self.inner.publish(event)

    async def subscribe(
        self, consumer: str, types: Iterable[EventType], handler: Handler, concurrency: int = 8
    ) -> None:
        await self.inner.subscribe(
            consumer, types, self._traced(consumer, handler), concurrency=concurrency
        )

    def _traced(self, consumer: str, handler: Handler) -> Handler:
        async def handle(event: Event) -> None:
            tracer = self._active()
            if tracer is None:
                await handler(event)
                return
            attributes = {
                "messaging.system": SYSTEM,
                "messaging.operation.type": "process",
                "messaging.destination.name": event.type.value,
                "messaging.consumer.group.name": consumer,
                "messaging.message.id": event.id,
            }
            with _current_span(
                tracer,
                f"{consumer} handle {event.type}",
                _event_context(event),
                SpanKind.CONSUMER,
                attributes,
            ):
                await handler(event)

        handle.__qualname__ = f"traced({getattr(handler, '__qualname__', 'handler')})"
        return handle

    async def close(self) -> None:
        await self.inner.close()
