"""Archival of closed runs: their history and visibility record, written before retention deletes
them, and read back by ``GetWorkflowExecutionHistory``.

An archive is named by a URI. ``file://<dir>`` is built in; other schemes plug in through
``register_archiver``. Writes are idempotent (archiving a run twice leaves the same files) and
atomic (a temporary file renamed into place), so the retention job may safely run again after a
crash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from temporalio.api.enums.v1 import ArchivalState
from temporalio.api.history.v1 import History, HistoryEvent


class ArchiveError(Exception):
    pass


class Archiver(Protocol):
    def archive(self, namespace_id: str, workflow_id: str, run_id: str, events: list[HistoryEvent], visibility: dict) -> None: ...

    def read_history(self, namespace_id: str, workflow_id: str, run_id: str) -> list[HistoryEvent] | None: ...

    def read_visibility(self, namespace_id: str, workflow_id: str, run_id: str) -> dict | None: ...


class FileArchiver:
    """``<root>/<namespace_id>/<sha256(workflow_id)[:32]>/<run_id>.history`` (a serialized
    ``temporal.api.history.v1.History``) and ``.visibility.json`` beside it."""

    def __init__(self, root: str):
        self.root = Path(root)

    def _base(self, namespace_id: str, workflow_id: str, run_id: str) -> Path:
        digest = hashlib.sha256(workflow_id.encode()).hexdigest()[:32]
        return self.root / namespace_id / digest / run_id

    def archive(self, namespace_id: str, workflow_id: str, run_id: str, events: list[HistoryEvent], visibility: dict) -> None:
        base = self._base(namespace_id, workflow_id, run_id)
        base.parent.mkdir(parents=True, exist_ok=True)
        record = {"namespace_id": namespace_id, "workflow_id": workflow_id, "run_id": run_id, **_jsonable(visibility)}
        _atomic_write(base.with_suffix(".history"), History(events=events).SerializeToString())
        _atomic_write(base.with_suffix(".visibility.json"), json.dumps(record, sort_keys=True).encode())

    def read_history(self, namespace_id: str, workflow_id: str, run_id: str) -> list[HistoryEvent] | None:
        path = self._base(namespace_id, workflow_id, run_id).with_suffix(".history")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return list(History.FromString(data).events)

    def read_visibility(self, namespace_id: str, workflow_id: str, run_id: str) -> dict | None:
        path = self._base(namespace_id, workflow_id, run_id).with_suffix(".visibility.json")
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return record if record.get("workflow_id") == workflow_id else None


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _jsonable(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, (bytes, bytearray)):
            value = base64.b64encode(value).decode()
        out[key] = value
    return out


def _file_archiver(uri: str) -> Archiver:
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise ArchiveError(f"file archive URIs name a local directory (file:///path), not a host: {uri}")
    path = unquote(parsed.path)
    if not path:
        raise ArchiveError(f"archive URI has no path: {uri}")
    return FileArchiver(path)


_SCHEMES: dict[str, Callable[[str], Archiver]] = {"file": _file_archiver}


def register_archiver(scheme: str, factory: Callable[[str], Archiver]) -> None:
    """Make ``<scheme>://...`` archive URIs usable (e.g. an object store)."""
    _SCHEMES[scheme] = factory


def validate_uri(uri: str) -> None:
    scheme = urlparse(uri).scheme
    if scheme not in _SCHEMES:
        raise ArchiveError(f"unsupported archive URI scheme {scheme!r} (known: {', '.join(sorted(_SCHEMES))})")
    _SCHEMES[scheme](uri)


def archiver_for(uri: str) -> Archiver:
    validate_uri(uri)
    return _SCHEMES[urlparse(uri).scheme](uri)


def archive_uri_for(namespace_data: dict, default_uri: str | None) -> str | None:
    """Where a namespace's closed runs are archived: its own URI, the cluster default, or nowhere."""
    state = namespace_data.get("history_archival_state", ArchivalState.ARCHIVAL_STATE_UNSPECIFIED)
    if state == ArchivalState.ARCHIVAL_STATE_DISABLED:
        return None
    if state == ArchivalState.ARCHIVAL_STATE_ENABLED:
        return namespace_data.get("history_archival_uri") or default_uri
    return default_uri
