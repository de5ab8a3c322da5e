"""W3C trace context in and out of events, through OpenTelemetry's propagation API.

With no tracer configured this yields an empty carrier; once tracing is set up, an
event carries ``traceparent``/``tracestate`` so its consumers join the caller's trace.
"""

from __future__ import annotations

from opentelemetry import propagate


def current_trace_context() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
