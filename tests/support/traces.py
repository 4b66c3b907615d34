"""Spans for tests: an OTLP/HTTP receiver (what ``odin server`` and the Celery worker export to
when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` points at it), the spans of the OpenTelemetry SDK's
in-memory exporter (the test process's client and worker), in one shape, and the tree they make."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    service: str  # service.name/odin.role@host:pid
    attributes: dict[str, Any] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)  # linked span ids
    start: int = 0  # ns since the epoch


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in pairs}


def _service(resource: dict[str, Any]) -> str:
    role = f"/{resource['odin.role']}" if "odin.role" in resource else ""
    return f"{resource.get('service.name', '?')}{role} pid {resource.get('process.pid', '?')}"


class OtlpReceiver:
    """Collects the spans of ``POST /v1/traces`` (OTLP over HTTP, protobuf) on an ephemeral port."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                    ExportTraceServiceRequest,
                    ExportTraceServiceResponse,
                )

                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest.FromString(body)
                receiver._add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _add(self, request) -> None:
        found = []
        for resource_spans in request.resource_spans:
            service = _service(_attributes(resource_spans.resource.attributes))
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    found.append(
                        Span(
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            service,
                            _attributes(s.attributes),
                            [link.span_id.hex() for link in s.links],
                            s.start_time_unix_nano,
                        )
                    )
        with self._lock:
            self.spans.extend(found)

    def received(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def from_sdk(finished, service: str) -> list[Span]:
    """The in-memory exporter's spans (``InMemorySpanExporter.get_finished_spans()``)."""
    return [
        Span(
            s.name,
            format(s.context.trace_id, "032x"),
            format(s.context.span_id, "016x"),
            format(s.parent.span_id, "016x") if s.parent else "",
            service,
            dict(s.attributes or {}),
            [format(link.context.span_id, "016x") for link in s.links],
            s.start_time or 0,
        )
        for s in finished
    ]


KEY_ATTRIBUTES = ("odin.events", "odin.workflow_id", "rpc.method", "db.statement", "db.system", "celery.task_name", "celery.action")


def tree(spans: list[Span], trace_id: str, skip=lambda s: False) -> str:
    """The trace as an indented tree: name [service] key attributes, links; ``skip`` hides spans
    (their children are shown under the nearest shown ancestor)."""
    mine = [s for s in spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in mine}
    everywhere = {s.span_id: s for s in spans}
    children: dict[str, list[Span]] = {}
    for s in sorted(mine, key=lambda s: s.start):
        parent = s.parent_id if s.parent_id in by_id else ""
        children.setdefault(parent, []).append(s)
    lines: list[str] = []

    def show(s: Span, depth: int) -> None:
        nxt = depth
        if not skip(s):
            attrs = " ".join(f"{k}={_short(s.attributes[k])}" for k in KEY_ATTRIBUTES if k in s.attributes)
            links = f" links->{','.join(everywhere[x].name if x in everywhere else x[:8] for x in s.links)}" if s.links else ""
            lines.append(f"{'  ' * depth}{s.name} [{s.service}]{(' ' + attrs) if attrs else ''}{links}")
            nxt = depth + 1
        for child in children.get(s.span_id, []):
            show(child, nxt)

    for root in children.get("", []):
        show(root, 0)
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = "+".join(value) if isinstance(value, list) else " ".join(str(value).split())
    return text if len(text) <= 70 else text[:67] + "..."
