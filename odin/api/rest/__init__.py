"""The REST door: a Flask app (``create_app()``) served by gunicorn in production.

It runs Odin's runtime in-process on the bridge loop (no gRPC hop), against the same database and
Redis as every other process, so it works on a Heroku web dyno.
"""

from __future__ import annotations

import threading

from flask import Flask, jsonify

from odin import bridge
from odin.config import Settings


class RuntimeHandle:
    """This process's runtime, started on first use (after gunicorn has forked its workers)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._runtime = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._runtime is None:
                from odin.runtime import Runtime

                # A web process serves requests; the jobs of time belong to the system workers
                # (or to the single-process server when there is no Redis).
                self._runtime = bridge.run(Runtime(self.settings, run_system_jobs=False).start())
            return self._runtime

    def run(self, make_coro, timeout: float | None = 60.0):
        runtime = self.get()
        return bridge.run(make_coro(runtime), timeout)


def create_app(settings: Settings | None = None) -> Flask:
    app = Flask("odin")
    handle = RuntimeHandle(settings or Settings.from_env())
    app.extensions["odin"] = handle

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        checks = {}
        try:
            checks["database"] = "ok" if handle.run(lambda rt: rt.store.ping(), timeout=10) is None else "failed"
        except Exception as exc:  # report, do not crash: this is what the probe is for
            checks["database"] = f"failed: {type(exc).__name__}"
        if handle.settings.redis_url:
            try:
                handle.run(lambda rt: rt.redis.ping(), timeout=10)
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"failed: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        return jsonify(status="ready" if ready else "not ready", checks=checks), (200 if ready else 503)

    return app
