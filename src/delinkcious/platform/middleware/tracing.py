"""Tracing middleware: one span per service method call, for any Protocol.

``wrap(LinkManager, "links", core, tracing_middleware())`` gives every call a span named
``links.add_link`` (kind INTERNAL) that is current while the call runs, so what it calls
(remote clients inject ``traceparent``, events take ``current_trace_context()``) joins the
same trace. A failure sets the span's status to ERROR, records the exception, and raises
that very exception on.

With no tracer provider set up (``OTEL_TRACES_EXPORTER=none``) a call costs one function
call and one check more than without the middleware; so does a call whose span the
sampler is sure to drop (``worth_a_span``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from delinkcious.platform.middleware.base import Around, Invocation
from delinkcious.platform.tracing import active_tracer, current_span_context, worth_a_span

SERVICE = "delinkcious.service"
METHOD = "delinkcious.method"


def tracing_middleware(tracer: trace.Tracer | None = None) -> Around:
    """An ``Around`` making a span ``<service>.<method>`` per call.

    ``tracer`` defaults to the one ``setup_tracing`` installed, looked up at each call
    (so the middleware may be built before tracing is set up); give one in tests.
    """
    names: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}

    def tracing(invocation: Invocation, proceed: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        # Not a coroutine itself: a call without a span is handed straight to the next
        # layer, with no frame of this one in between.
        active = tracer if tracer is not None else active_tracer()
        if active is None:
            return proceed()
        if not worth_a_span(active, current_span_context()):
            # It would record nothing (inside an unsampled trace, or a root the sampler
            # never samples); the context carries on as it is. Sampling off costs little.
            return proceed()
        return traced(active, invocation, proceed)

    async def traced(
        active: trace.Tracer, invocation: Invocation, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        key = (invocation.service, invocation.method.name)
        found = names.get(key)
        if found is None:
            found = names[key] = (f"{key[0]}.{key[1]}", {SERVICE: key[0], METHOD: key[1]})
        name, attributes = found
        span = active.start_span(name, kind=SpanKind.INTERNAL, attributes=attributes)
        token = context.attach(trace.set_span_in_context(span))
        try:
            return await proceed()
        except Exception as exc:
            if span.is_recording():
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            context.detach(token)
            span.end()

    return tracing
