"""How Odin's processes log: plain text or one JSON object per line (``ODIN_LOG_FORMAT``), and the
routine sweeps of the Celery worker and beat at DEBUG, so that an idle deployment logged at INFO
says nothing every second."""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from odin import tracing
from odin.config import log_format_from_env

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# System jobs beat sends every second or two (and retention's every few minutes): each sending,
# receipt and success would be an INFO line. Timers fired and runs archived stay at INFO.
ROUTINE_TASKS = frozenset({"odin.sweep_timers", "odin.sweep_transfers", "odin.retention_sweep", "odin.run_batches"})
# The Celery loggers that write a line per task: received, succeeded, sent by beat.
CELERY_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace", "celery.beat")


# What the process is working on: ``namespace``, ``workflow_id``, ``run_id`` (set where a call
# enters, by the gate, and where the engine changes a run). Never mutated: ``bind`` sets a copy.
_fields: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("odin_log_fields", default={})  # noqa: B039


# Only JSON lines print the context: until a JsonFormatter exists, binding is skipped.
_wanted = False

Token = contextvars.Token[dict[str, str]] | None


def bind(**fields: str) -> Token:
    """Add the non-empty ``fields`` to the log context until ``unbind(token)``."""
    if not _wanted:
        return None
    known = _fields.get()
    return _fields.set({**known, **{k: v for k, v in fields.items() if v}})


def unbind(token: Token) -> None:
    if token is not None:
        _fields.reset(token)


def context_fields() -> dict[str, str]:
    """The log context, with ``trace_id`` when a span is current."""
    fields = _fields.get()
    trace_id = tracing.trace_id()
    return {**fields, "trace_id": trace_id} if trace_id else dict(fields)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, RFC 3339), level, logger, message, process, the
    log context (``namespace``, ``workflow_id``, ``run_id``, ``trace_id`` where known), the
    record's ``odin_fields`` (an audit line's fields, its message then ``odin_summary``), and the traceback as ``exception`` when
    there is one."""

    def __init__(self) -> None:
        global _wanted
        super().__init__()
        _wanted = True

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": getattr(record, "odin_summary", None) or record.getMessage(),
            "process": record.process,
        }
        document.update(context_fields())
        extra = getattr(record, "odin_fields", None)
        if isinstance(extra, Mapping):
            document.update(extra)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def formatter() -> logging.Formatter:
    """The formatter ``ODIN_LOG_FORMAT`` asks for (``text``, the default, or ``json``)."""
    return JsonFormatter() if log_format_from_env() == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str) -> None:
    """Logging of the ``odin`` command's processes: the root logger at ``level``, on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])


def _task_name(record: logging.LogRecord) -> str | None:
    if isinstance(record.args, Mapping):  # Celery's received/succeeded lines pass a context dict
        name = record.args.get("name")
        return name if isinstance(name, str) else None
    if isinstance(record.args, tuple) and len(record.args) == 2 and str(record.msg).startswith("Scheduler: Sending due task"):
        return str(record.args[1])
    return None


class RoutineAtDebug(logging.Filter):
    """Lower the INFO lines of routine tasks to DEBUG: dropped unless the logger is at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or _task_name(record) not in ROUTINE_TASKS:
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_ROUTINE = RoutineAtDebug()


def quiet_routine_celery_tasks() -> None:
    for name in CELERY_TASK_LOGGERS:
        logger = logging.getLogger(name)
        if _ROUTINE not in logger.filters:
            logger.addFilter(_ROUTINE)


def celery_handlers_use_odin_format(logger: logging.Logger | None = None, **_) -> None:
    """For Celery's ``after_setup_logger`` / ``after_setup_task_logger``: JSON lines when asked."""
    if logger is None or log_format_from_env() != "json":
        return
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
