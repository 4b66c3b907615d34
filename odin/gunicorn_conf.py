"""gunicorn settings for Odin's web process (the Procfile's ``-c python:odin.gunicorn_conf``).

With several worker processes, each keeps its own metrics: ``PROMETHEUS_MULTIPROC_DIR`` (a fresh
temporary folder unless set) makes them write their samples there, and ``/metrics`` on any worker
adds up all of them. A folder given by the operator is emptied at start, as prometheus_client asks.
The folder is chosen when gunicorn reads this file, before anything imports prometheus_client
(which picks its storage on import): this module sits outside the REST package for that reason.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _multiprocess_folder() -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="odin-metrics-")
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for stale in Path(folder).glob("*.db"):
        stale.unlink()


_multiprocess_folder()


def child_exit(server, worker) -> None:
    # A gone worker's live gauges stop counting (its counters and histograms stay in the sums).
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
