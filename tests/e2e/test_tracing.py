"""One request is one trace across processes: gateway → links → outbox relay → news, checker.

Every service runs as its own ``delinkcious serve`` process exporting spans over OTLP/HTTP
to a receiver this test runs on loopback (a few lines of ``http.server`` decoding the
protobuf bodies with the OpenTelemetry proto package): no collector, no Jaeger needed.
"""

from __future__ import annotations

import asyncio
import gzip
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.e2e.conftest import drop_backends, new_username, register_and_login
from tests.e2e.test_distributed import SERVICES, Cluster
from tests.e2e.test_social_news import eventually


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root
    name: str
    kind: str  # SPAN_KIND_SERVER, SPAN_KIND_CONSUMER, ...


class OtlpReceiver:
    """Accepts ``POST /v1/traces`` (OTLP/HTTP, protobuf) and keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    receiver.note(f"POST {self.path}")
                    self._answer(404, b"")
                    return
                try:
                    receiver.take(ExportTraceServiceRequest.FromString(body))
                except Exception as exc:  # a body we cannot read is the exporter's bug
                    receiver.note(f"undecodable export: {exc!r}")
                    self._answer(400, b"")
                    return
                self._answer(200, ExportTraceServiceResponse().SerializeToString())

            def _answer(self, status: int, content: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the exporters post every 200 ms

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)
        return f"http://{host}:{port}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def note(self, problem: str) -> None:
        with self._lock:
            self.problems.append(problem)

    def take(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            service = attributes.get("service.name", "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            service=service,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=Span.SpanKind.Name(span.kind),
                        )
                    )
        with self._lock:
            self.spans.extend(found)

    def received(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    running = OtlpReceiver().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def traced_cluster(
    tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver
) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("traced"))
    for inherited in (
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",  # would give every process the same name
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",  # would win over the endpoint below
        "OTEL_TRACES_SAMPLER_ARG",
    ):
        running.env.pop(inherited, None)
    running.env.update(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
    )
    try:
        for service in SERVICES:
            running.start(service)
        yield running
    finally:
        running.stop()
        asyncio.run(drop_backends(running.suffix, running.env))


def _trace_of(spans: list[ReceivedSpan], name: str) -> str | None:
    roots = [s for s in spans if s.service == "gateway" and s.kind == "SPAN_KIND_SERVER"]
    matching = {s.trace_id for s in roots if s.name == name}
    assert len(matching) <= 1, f"more than one {name} request was traced: {matching}"
    return next(iter(matching), None)


def _orphans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """Spans whose parent was never received: a break in the trace (or not sent yet)."""
    known = {span.span_id for span in spans}
    return [span for span in spans if span.parent_span_id and span.parent_span_id not in known]


def _describe(spans: list[ReceivedSpan]) -> str:
    return "\n".join(
        f"  {s.service:<13} {s.kind:<19} {s.name:<40} "
        f"trace={s.trace_id[:8]} span={s.span_id[:8]} parent={s.parent_span_id[:8] or '-'}"
        for s in sorted(spans, key=lambda s: (s.trace_id, s.service, s.name))
    )


def test_one_add_is_one_trace_across_the_processes(
    traced_cluster: Cluster, receiver: OtlpReceiver
) -> None:
    gateway = traced_cluster.url("gateway")
    with httpx.Client(base_url=gateway, timeout=20) as api:
        author = new_username()
        alice, bob = register_and_login(api, author), register_and_login(api)
        assert api.post("/v1/following", json={"followed": author}, headers=bob).status_code == 201
        url = f"http://127.0.0.1:9/traced/{secrets.token_hex(4)}"
        added = api.post("/v1/links", json={"url": url, "title": "traced"}, headers=alice)
        assert added.status_code == 201, added.text

        def in_news() -> bool:
            events = api.get("/v1/news", headers=bob).json()["events"]
            return any(event["url"] == url for event in events)

        assert eventually(in_news, timeout=30.0), "the add never reached the follower's news"

    # Every service that takes part, its spans received, and none of them cut off.
    expected = {"gateway", "links", "news", "link_checker", "social_graph"}

    def one_whole_trace() -> list[ReceivedSpan] | None:
        spans = receiver.received()
        trace_id = _trace_of(spans, "POST /v1/links")
        if trace_id is None:
            return None
        in_trace = [span for span in spans if span.trace_id == trace_id]
        if expected <= {span.service for span in in_trace} and not _orphans(in_trace):
            return in_trace
        return None

    eventually(one_whole_trace, timeout=30.0)  # then say what is missing, if anything
    spans = receiver.received()
    assert not receiver.problems, receiver.problems
    trace_id = _trace_of(spans, "POST /v1/links")
    assert trace_id is not None, (
        "no gateway SERVER span 'POST /v1/links' was exported; received:\n" + _describe(spans)
    )
    in_trace = [span for span in spans if span.trace_id == trace_id]
    services = {span.service for span in in_trace}
    # The bar: at least gateway, links and news share the request's trace id...
    assert {"gateway", "links", "news"} <= services, (
        f"the POST /v1/links trace has spans from {sorted(services)} only:\n" + _describe(in_trace)
    )
    # ... and so do the checker and the call news made to the social graph, in one tree.
    assert expected <= services, _describe(in_trace)
    assert not _orphans(in_trace), "spans cut off from the trace:\n" + _describe(in_trace)
    kinds = {(span.service, span.kind) for span in in_trace}
    assert ("links", "SPAN_KIND_PRODUCER") in kinds  # the outbox relay's publish
    assert ("news", "SPAN_KIND_CONSUMER") in kinds
    assert ("link_checker", "SPAN_KIND_CONSUMER") in kinds
    names = {(span.service, span.name) for span in in_trace}
    assert ("news", "news handle link.added") in names
    assert ("links", "links.add_link") in names
    roots = [span for span in in_trace if not span.parent_span_id]
    assert [(root.service, root.name) for root in roots] == [("gateway", "POST /v1/links")]
