"""OpenTelemetry traces: off unless the standard ``OTEL_*`` variables ask for an exporter.

``configure(role)`` runs once per process (``odin server``/``dev``, the Celery worker, the REST
app). With tracing off it returns at once, ``enabled`` stays False and every hook below is one
``if`` on that flag, so an untraced server pays nothing. With it on, the process has a
``TracerProvider`` exporting over OTLP (``OTEL_EXPORTER_OTLP_*``) and:

- a span per gRPC call (``rpc_span``), continuing the trace the caller put in the request's
  Temporal header (``_tracer-data``, written by temporalio's ``TracingInterceptor``) or in a
  ``traceparent`` metadata entry;
- a span per history transition (``RunSpan``): a new run stores the trace it was started in
  (``MutableState.trace_context``) and every later change to it is a child of that, linked to
  the call that made it (a worker's poll or completion, a Celery job), so a run is one trace;
- a span per store call (``sql_group``: one transaction or read, its statements below it from the
  SQLAlchemy instrumentation), per Redis round trip and per Celery job (their instrumentations;
  Celery's carries the context from the process that queued a job to the worker that runs it);
- a span per REST route (Flask's instrumentation).
"""

from __future__ import annotations

import contextvars
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

R = TypeVar("R")

# Set by configure(); read on every hot path before anything else is touched.
enabled = False
_tracer: Tracer | None = None

# The header temporalio's TracingInterceptor (and the Odin SDK with tracing on) writes.
TEMPORAL_HEADER = "_tracer-data"
# Exporters ``OTEL_TRACES_EXPORTER`` may name here.
EXPORTERS = ("otlp", "console", "none")


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces: ``OTEL_TRACES_EXPORTER`` names an exporter other
    than ``none``, or an OTLP endpoint is set; ``OTEL_SDK_DISABLED=true`` wins over both."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def _exporter(env: Mapping[str, str]) -> SpanExporter:
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown or len(names) != 1:
        raise ValueError(f"OTEL_TRACES_EXPORTER={env.get('OTEL_TRACES_EXPORTER')!r}: Odin exports to one of otlp, console")
    if names[0] == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    if protocol != "http/protobuf":
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: Odin exports OTLP over http/protobuf")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_*


def configure(
    role: str, *, exporter: SpanExporter | None = None, environ: Mapping[str, str] | None = None, instrument: bool = True
) -> bool:
    """Turn tracing on for this process if the environment asks (or ``exporter`` is given, for
    tests and scripts); ``instrument=False`` leaves SQLAlchemy, Redis and Celery alone (an SDK
    process); ``role`` (``server``, ``worker``, ``web``...) becomes the resource's
    ``odin.role``. The service name is ``OTEL_SERVICE_NAME`` (default ``odin``). Returns whether
    tracing is on. Calling it again changes nothing."""
    global enabled, _tracer
    env = os.environ if environ is None else environ
    if enabled:
        return True
    if exporter is None and not wanted(env):
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import OTEL_SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {
            "service.name": env.get(OTEL_SERVICE_NAME) or "odin",
            "odin.role": role,
            "host.name": socket.gethostname(),
            "process.pid": os.getpid(),
        }
    )
    # An SDK process (instrument=False) samples as OTEL_TRACES_SAMPLER says: its root spans are
    # client spans (StartWorkflow:...), which the server processes' sampler leaves out.
    provider = TracerProvider(resource=resource, sampler=_sampler() if instrument else None)
    provider.add_span_processor(BatchSpanProcessor(exporter or _exporter(env)))
    trace.set_tracer_provider(provider)
    if instrument:
        _instrument_libraries()
    _tracer = trace.get_tracer("odin")
    enabled = True
    return True


# Celery jobs beat sends every second or so: their spans (and everything below) are not kept.
ROUTINE_JOBS = frozenset(f"run/{name}" for name in ("odin.sweep_timers", "odin.sweep_transfers", "odin.run_batches", "odin.retention_sweep"))


def _sampler():
    """The sampler ``OTEL_TRACES_SAMPLER`` names (every trace by default), except that a trace
    never starts at a routine sweep, a store call or a bare SQL statement or Redis command (shard
    leases, clock syncs, idle waits, wake-ups): an idle deployment sends no spans."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import sampling

    configured = sampling._get_from_env_or_default()  # the SDK's reading of OTEL_TRACES_SAMPLER[_ARG]

    class Sampler(sampling.Sampler):
        def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
            root = not trace.get_current_span(parent_context).get_span_context().is_valid
            # A client span with no parent is a Redis command or SQL statement outside any call.
            if root and (name in ROUTINE_JOBS or kind == trace.SpanKind.CLIENT or _is_storage_call(attributes)):
                return sampling.SamplingResult(sampling.Decision.DROP)
            return configured.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

        def get_description(self) -> str:
            return f"OdinSampler{{{configured.get_description()}}}"

    return Sampler()


def _is_storage_call(attributes: Mapping[str, Any] | None) -> bool:
    return bool(attributes) and ("db.system" in attributes or "db.system.name" in attributes)  # type: ignore[operator]


def provider() -> TracerProvider | None:
    """This process's provider when tracing is on (flush it before a process ends)."""
    if not enabled:
        return None
    from opentelemetry import trace

    current = trace.get_tracer_provider()
    return current if hasattr(current, "force_flush") else None  # type: ignore[return-value]


def flush(timeout_millis: int = 5_000) -> None:
    current = provider()
    if current is not None:
        current.force_flush(timeout_millis)


def _instrument_libraries() -> None:
    """Redis round trips and Celery jobs get spans from OpenTelemetry's own instrumentations
    (SQLAlchemy's and Flask's are applied per engine and app: ``instrument_engine``,
    ``instrument_flask``)."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for instrumentor in (RedisInstrumentor(), CeleryInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def instrument_engine(engine: Any) -> None:
    """A span per SQL statement of ``engine`` (the SQLAlchemy instrumentation's engine tracer,
    applied to the engine alone: its global switch would also patch SQLAlchemy's asyncio module,
    which needs greenlet, and its declared versions stop before SQLAlchemy 2.1)."""
    if not enabled:
        return
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    usage = metrics.get_meter("odin").create_up_down_counter("db.client.connections.usage", unit="connections")
    EngineTracer(trace.get_tracer("opentelemetry.instrumentation.sqlalchemy"), engine, usage)


def instrument_flask(app: Any) -> None:
    """A span per REST route (the W3C ``traceparent`` header of the request continues a trace)."""
    if not enabled:
        return
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    # Probes, metrics scrapes and static files make no spans (regular expressions on the URL).
    FlaskInstrumentor.instrument_app(app, excluded_urls=r"/healthz$,/readyz$,/metrics$,/static/")


def tracer() -> Tracer:
    assert _tracer is not None, "tracing is off"
    return _tracer


# -- contexts --------------------------------------------------------------------------------


def _propagator():
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def context_from_header(header: Any) -> Context | None:
    """The trace context in a Temporal ``Header`` (temporalio's ``_tracer-data``), if any."""
    if header is None or TEMPORAL_HEADER not in header.fields:
        return None
    payload = header.fields[TEMPORAL_HEADER]
    try:
        carrier = json.loads(payload.data)
    except ValueError:
        return None
    return _context_from_carrier(carrier) if isinstance(carrier, dict) else None


def _context_from_carrier(carrier: Mapping[str, str]) -> Context | None:
    from opentelemetry import trace

    ctx = _propagator().extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def context_from_traceparent(traceparent: str) -> Context | None:
    return _context_from_carrier({"traceparent": traceparent}) if traceparent else None


def current_traceparent() -> str:
    """The current span as a W3C ``traceparent`` ("" when there is none, or it is not sampled: a
    run started inside a routine sweep's dropped trace keeps none, and its changes start traces
    of their own instead of being dropped with it)."""
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().trace_flags.sampled:
        return ""
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    return carrier.get("traceparent", "")


def trace_id() -> str:
    """The current trace id in hex ("" when tracing is off or no span is current), for logs."""
    if not enabled:
        return ""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


# -- spans -----------------------------------------------------------------------------------


def _request_parent(request: Any, metadata: Mapping[str, str]) -> Context | None:
    fields = request.DESCRIPTOR.fields_by_name
    if "header" in fields and request.HasField("header"):
        ctx = context_from_header(request.header)
        if ctx is not None:
            return ctx
    return context_from_traceparent(metadata.get("traceparent", ""))


@contextmanager
def rpc_span(service: str, method: str, request: Any, metadata: Mapping[str, str]) -> Iterator[Span]:
    """The server span of one gRPC call, a child of the caller's trace when it sent one."""
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
    fields = request.DESCRIPTOR.fields_by_name
    if "namespace" in fields:
        attributes["odin.namespace"] = request.namespace
    with tracer().start_as_current_span(
        method, context=_request_parent(request, metadata), kind=SpanKind.SERVER, attributes=attributes
    ) as span:
        yield span


class RunSpan:
    """The span of one change to a run (an engine update). It starts once the run's state is
    loaded: a child of the trace the run was started in (``MutableState.trace_context``), linked
    to the span of the call or job that made the change, or simply a child of that span when it
    is already in the run's trace."""

    __slots__ = ("_attributes", "_span", "_token")

    def __init__(self, name: str, attributes: dict[str, Any]):
        self._attributes = attributes
        self._span: Span | None = None
        self._token: object = None
        self._attributes["odin.operation"] = name

    def start(self, state: Any) -> None:
        """Start the span for ``state`` (the first call only: a retried update keeps its span)."""
        if self._span is not None:
            return
        from opentelemetry import context, trace

        current = trace.get_current_span().get_span_context()
        stored = context_from_traceparent(state.trace_context)
        parent, links = None, []
        if stored is not None:
            stored_span = trace.get_current_span(stored).get_span_context()
            if not current.is_valid or current.trace_id != stored_span.trace_id:
                parent = stored
                if current.is_valid and current.trace_flags.sampled:
                    links.append(trace.Link(current))
        self._attributes.update(
            {"odin.namespace": state.namespace, "odin.workflow_id": state.workflow_id, "odin.run_id": state.run_id}
        )
        # Renamed by the events it wrote when it ends.
        self._span = tracer().start_span("history.update", context=parent, attributes=self._attributes, links=links)
        self._token = context.attach(trace.set_span_in_context(self._span))

    def finish(self, transition: Any = None, error: BaseException | None = None) -> None:
        if self._span is None:
            return
        from opentelemetry import context
        from opentelemetry.trace import StatusCode

        span = self._span
        if transition is not None:
            events = [_event_name(e.event_type) for e in transition.events]
            span.set_attribute("odin.events", events)
            if events:  # named by what it wrote: "history ACTIVITY_TASK_STARTED+ACTIVITY_TASK_COMPLETED+..."
                span.update_name("history " + "+".join(events))
        if error is not None:
            span.record_exception(error)
            span.set_status(StatusCode.ERROR, str(error))
        context.detach(self._token)  # type: ignore[arg-type]
        span.end()
        self._span = None


def _event_name(event_type: int) -> str:
    from temporalio.api.enums.v1 import EventType

    return EventType.Name(EventType.ValueType(event_type)).removeprefix("EVENT_TYPE_")


def start_span(name: str, attributes: dict[str, Any] | None = None):
    """A child span of the current one, as a context manager (only call with tracing on)."""
    return tracer().start_as_current_span(name, attributes=attributes)


# Frames between a store method and ``sql_group``: the helpers every store call goes through.
_STORE_PLUMBING = frozenset({"sql_group", "run", "_read", "_write"})


def _store_caller() -> str:
    """The name of the store method that made this call (``get_execution``, ``commit``...)."""
    frame = sys._getframe(1)
    for _ in range(6):
        if frame.f_back is None:
            break
        frame = frame.f_back
        if frame.f_code.co_name not in _STORE_PLUMBING:
            return frame.f_code.co_name
    return "call"


def sql_group(fn: Callable[..., R]) -> Callable[..., R]:
    """``fn`` (one store call, run on a database thread) in a span of its own, in the caller's
    context: the statements it runs become its children."""
    context = contextvars.copy_context()
    own = getattr(fn, "__name__", "")
    name = f"sql {own.lstrip('_') if own and own != '_retry_dead_connection' else _store_caller()}"

    def run(*args: Any) -> R:
        def inner() -> R:
            with tracer().start_as_current_span(name, attributes={"db.system": "sql"}):
                return fn(*args)

        return context.run(inner)

    return run
