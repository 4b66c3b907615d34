"""Probes, the OpenAPI document, and what the cluster says about itself."""

from __future__ import annotations

import os

import prometheus_client
from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import multiprocess
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

# (By its full name: the package's __init__ imports the routes.)
import odin.api.rest.openapi as openapi
from odin.api.rest.invoke import invoke
from odin.api.rest.openapi import Doc, Reply, documented
from odin.api.rest.routes import reply
from odin.operations import Operation

bp = Blueprint("system", __name__)
TAG = "system"

_STATUS = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
_READY = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "checks": {"type": "object", "additionalProperties": {"type": "string"}}},
    "required": ["status", "checks"],
}


@bp.get("/healthz")
@documented(Doc("Liveness probe", TAG, responses={200: Reply("The process serves requests.", schema=_STATUS)}))
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
@documented(Doc(
    "Readiness probe", TAG,
    responses={
        200: Reply("The database (and Redis, when configured) answer.", schema=_READY),
        503: Reply("Something this process needs does not answer.", schema=_READY),
    },
))
def readyz():
    handle = current_app.extensions["odin"]
    checks = {}
    try:
        handle.run(lambda rt: rt.store.ping(), timeout=10)
        checks["database"] = "ok"
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


@bp.get("/metrics")
@documented(Doc(
    "Prometheus metrics", TAG,
    responses={200: Reply("The metrics in Prometheus' text format.", media="text/plain")},
    description="Prometheus metrics of this process (every one is listed in docs/operations.md).",
))
def metrics():
    registry = prometheus_client.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # gunicorn with several workers: add them all up
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(prometheus_client.generate_latest(registry), mimetype=prometheus_client.CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
@documented(Doc("This document", TAG, responses={200: Reply("The OpenAPI 3.1 document.", schema={"type": "object"})}))
def openapi_json():
    document = current_app.extensions.get("odin.openapi")
    if document is None:
        document = current_app.extensions["odin.openapi"] = openapi.build(current_app)
    return jsonify(document)


@bp.get("/api/v1/system-info")
@documented(Doc(
    "Server version and capabilities", TAG, Operation.GetSystemInfo,
    responses={200: Reply("What SDKs ask on connect.", ws.GetSystemInfoResponse)},
))
def system_info():
    async def call(f):
        return f.system_info()

    return reply(invoke(Operation.GetSystemInfo, None, call))


@bp.get("/api/v1/cluster-info")
@documented(Doc(
    "Cluster information", TAG, Operation.GetClusterInfo,
    responses={200: Reply("Cluster id and name, history shards, persistence.", ws.GetClusterInfoResponse)},
))
def cluster_info():
    req = ws.GetClusterInfoRequest()
    return reply(invoke(Operation.GetClusterInfo, None, lambda f: f.get_cluster_info(req)))
