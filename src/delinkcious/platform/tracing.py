"""Tracing setup: an OpenTelemetry SDK provider configured by the standard ``OTEL_*`` variables.

``OTEL_TRACES_EXPORTER`` picks the exporters (``otlp``, ``console``, ``none``, or several
separated by commas); the caller gives the default of its shape (``none`` embedded). With
``none`` (or ``OTEL_SDK_DISABLED=true``) no SDK provider is installed at all and the SDK is
not even imported: the tracing middleware then passes calls straight through.

The rest is read by the SDK itself, as documented for it: ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``..._HEADERS``, ``..._TIMEOUT``, ...),
``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``, ``OTEL_BSP_*`` for the batching,
``OTEL_RESOURCE_ATTRIBUTES``. ``OTEL_SERVICE_NAME`` overrides the service name.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING

from opentelemetry import context, trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace.propagation import _SPAN_KEY

from delinkcious import __version__

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler

log = logging.getLogger("delinkcious.tracing")

EXPORTERS = frozenset({"otlp", "console", "none"})
INSTRUMENTATION = "delinkcious"

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


# FastAPI's own OpenTelemetry, off in every app of ours: server spans come from our
# middleware and transport (sample-aware), metrics from Prometheus, logs from structlog.
# Left on, it asks the OTel API for its meter and logger providers on every request,
# reading os.environ each time.
FASTAPI_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class TracingConfigurationError(ValueError):
    """``OTEL_TRACES_EXPORTER`` names an exporter this program does not have."""


def exporters_from_env(default: str = "none") -> tuple[str, ...]:
    """The exporters ``OTEL_TRACES_EXPORTER`` asks for (``()`` when tracing is off)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "").strip() or default
    names = tuple(dict.fromkeys(name.strip().lower() for name in raw.split(",") if name.strip()))
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise TracingConfigurationError(
            f"OTEL_TRACES_EXPORTER: unknown exporter {unknown[0]!r}; "
            "use otlp, console or none (or several, comma-separated)"
        )
    if "none" in names:
        if len(names) > 1:
            raise TracingConfigurationError("OTEL_TRACES_EXPORTER: 'none' cannot be combined")
        return ()
    return names


def default_exporter(shape: str) -> str:
    """The exporter when ``OTEL_TRACES_EXPORTER`` is unset: ``none`` embedded; in the processes
    shape ``otlp`` once an OTLP endpoint is configured (else ``none``: an exporter with no
    collector would only log a failed export every few seconds).
    """
    if shape == "embedded":
        return "none"
    configured = any(
        os.environ.get(name, "").strip()
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    return "otlp" if configured else "none"


def build_provider(
    service: str, exporters: tuple[str, ...], version: str = __version__
) -> TracerProvider:
    """A provider (not installed) exporting through ``exporters`` in background batches.

    The sampler and every exporter setting come from the environment, read by the SDK.
    """
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or service
    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES; ours win where they overlap.
    resource = Resource.create({SERVICE_NAME: name, SERVICE_VERSION: version})
    provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER(_ARG)
    for exporter in exporters:
        if exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif exporter == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return provider


def setup_tracing(
    service: str, default_exporter: str = "none", *, version: str = __version__
) -> TracerProvider | None:
    """Install this process's tracer provider from the ``OTEL_*`` variables; once per process.

    ``version`` is the resource's ``service.version`` (give ``Settings.version``, the one
    the metrics carry, so a canary's traces can be told from its baseline's).

    Returns the provider, or ``None`` when the exporter is ``none``: then nothing is
    installed and spans cost nothing. Raises ``TracingConfigurationError`` for an unknown
    exporter (a configuration error: say it and exit). A second call returns the first
    provider (OpenTelemetry's global provider can be set only once).
    """
    global _provider, _tracer
    if _provider is not None:
        return _provider
    exporters = exporters_from_env(default_exporter)
    if not exporters:
        return None
    provider = build_provider(service, exporters, version)
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer(INSTRUMENTATION, __version__)
    log.info("tracing %s with %s", service, ", ".join(exporters))
    return provider


def shutdown_tracing(timeout_seconds: float = 5.0) -> None:
    """Export the spans still queued and stop the exporters (call it once, on exit)."""
    global _tracer
    if _provider is None:
        return
    try:
        _provider.force_flush(int(timeout_seconds * 1000))
    finally:
        _provider.shutdown()
        _tracer = None  # spans after shutdown would be dropped anyway: stop making them


def _context_getter() -> Callable[[], context.Context]:
    """``context.get_current``, or the ``ContextVar.get`` it comes down to by default.

    OpenTelemetry keeps the current context in a ContextVar behind two calls; asking the
    variable itself saves both. Only for its default runtime context (another one may be
    configured by ``OTEL_PYTHON_CONTEXT``), and a test checks the answers agree.
    """
    runtime = getattr(context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(variable, ContextVar):
        return variable.get
    return context.get_current


_current_context = _context_getter()


def current_span_context() -> trace.SpanContext | None:
    """The current span's context; None when no span is current.

    ``trace.get_current_span().get_span_context()`` in one call instead of six (it runs
    for every service call, mostly with no span about). The key is OpenTelemetry's own.
    """
    span = _current_context().get(_SPAN_KEY)
    if span is None:  # before isinstance: an ABC's check of None is a Python call
        return None
    return span.get_span_context() if isinstance(span, trace.Span) else None


def worth_a_span(tracer: trace.Tracer, parent: trace.SpanContext | None) -> bool:
    """Whether a span under ``parent`` (None or not valid: a root) could be sampled by ``tracer``.

    A span its sampler is sure to drop records nothing, and skipping it changes no trace:
    the context stays the parent's, which carries an unsampled trace on (or none, as with
    tracing off). It saves the SDK's 5 µs per span, much of what tracing with sampling off
    cost a request. With the SDK's samplers: a child of an unsampled parent is dropped
    (unless ``always_on``), a root under ``always_off``, ``parentbased_always_off`` or a
    ratio of 0. Any other sampler might decide by name or attributes: it is assumed to
    sample roots and to follow its parent's decision.
    """
    roots, unsampled_children = _may_sample(getattr(tracer, "sampler", None))
    if parent is not None and parent.is_valid:
        return unsampled_children or parent.trace_flags.sampled
    return roots


@functools.lru_cache(maxsize=32)
def _may_sample(sampler: Sampler | None) -> tuple[bool, bool]:
    """(may sample a root, may sample a child of an unsampled parent), asked of ``sampler``.

    Asked with trace id 1, which any ratio above 0 samples (ratio samplers compare the
    low 64 bits of the trace id with the ratio of 2**64).
    """
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        StaticSampler,
        TraceIdRatioBased,
    )

    if not isinstance(sampler, (StaticSampler, TraceIdRatioBased, ParentBased)):
        return True, False

    def sampled(parent: trace.SpanContext | None) -> bool:
        under = None
        if parent is not None:
            under = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        return sampler.should_sample(under, 1, "probe").decision is Decision.RECORD_AND_SAMPLE

    unsampled = (
        trace.SpanContext(1, 1, is_remote=remote, trace_flags=trace.TraceFlags(0))
        for remote in (True, False)
    )
    return sampled(None), any(sampled(parent) for parent in unsampled)


def active_tracer() -> trace.Tracer | None:
    """The tracer of the installed provider, or ``None`` when no spans are being recorded.

    ``None`` also before ``setup_tracing`` and after ``shutdown_tracing``; the middleware
    checks it per call, so it may be built before tracing is set up.
    """
    return _tracer
