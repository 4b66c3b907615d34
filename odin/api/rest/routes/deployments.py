"""Worker deployments: list and describe deployments and versions, set the current or ramping
version, update a version's metadata, delete a version or an empty deployment. The paths are
Temporal's HTTP API's.

Bodies are the WorkflowService request messages in proto3 JSON (payloads as plain JSON values)
without the fields the path gives.
"""

from __future__ import annotations

from flask import Blueprint
from temporalio.api.deployment.v1 import WorkerDeploymentVersion
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.api.rest.codec import from_json
from odin.api.rest.invoke import invoke
from odin.api.rest.openapi import Body, Doc, Reply, documented
from odin.api.rest.params import NEXT_PAGE_TOKEN, PAGE_SIZE, json_body
from odin.api.rest.routes import reply
from odin.operations import Operation

bp = Blueprint("deployments", __name__, url_prefix="/api/v1/namespaces/<namespace>")
TAG = "worker deployments"
IDENTITY = "odin-rest"
_DEPLOYMENT = ("namespace", "deploymentName")  # body fields the path gives
_VERSION = ("namespace", "deploymentVersion", "version")


@bp.get("/worker-deployments")
@documented(Doc(
    "List worker deployments", TAG, Operation.ListWorkerDeployments, params=(PAGE_SIZE, NEXT_PAGE_TOKEN),
    responses={200: Reply("A page of deployments by name: routing, latest, current and ramping version.", ws.ListWorkerDeploymentsResponse)},
))
def list_worker_deployments(namespace: str):
    req = ws.ListWorkerDeploymentsRequest(
        namespace=namespace, page_size=PAGE_SIZE.read() or 0, next_page_token=NEXT_PAGE_TOKEN.read()
    )
    return reply(invoke(Operation.ListWorkerDeployments, namespace, lambda f: f.list_worker_deployments(req)))


@bp.get("/worker-deployments/<deployment_name>")
@documented(Doc(
    "Describe a worker deployment", TAG, Operation.DescribeWorkerDeployment,
    responses={200: Reply("Its versions (newest first, with drainage status), routing and conflict token.", ws.DescribeWorkerDeploymentResponse)},
))
def describe_worker_deployment(namespace: str, deployment_name: str):
    req = ws.DescribeWorkerDeploymentRequest(namespace=namespace, deployment_name=deployment_name)
    return reply(invoke(Operation.DescribeWorkerDeployment, namespace, lambda f: f.describe_worker_deployment(req)))


@bp.delete("/worker-deployments/<deployment_name>")
@documented(Doc(
    "Delete a worker deployment", TAG, Operation.DeleteWorkerDeployment,
    responses={200: Reply("Deleted.", ws.DeleteWorkerDeploymentResponse)},
    description="400 FAILED_PRECONDITION while the deployment has versions.",
))
def delete_worker_deployment(namespace: str, deployment_name: str):
    req = ws.DeleteWorkerDeploymentRequest(namespace=namespace, deployment_name=deployment_name, identity=IDENTITY)
    return reply(
        invoke(Operation.DeleteWorkerDeployment, namespace, lambda f: f.delete_worker_deployment(req), target=deployment_name)
    )


@bp.post("/worker-deployments/<deployment_name>/set-current-version")
@documented(Doc(
    "Set a deployment's current version", TAG, Operation.SetWorkerDeploymentCurrentVersion,
    body=Body(ws.SetWorkerDeploymentCurrentVersionRequest, _DEPLOYMENT),
    responses={200: Reply("The previous current version and a new conflict token.", ws.SetWorkerDeploymentCurrentVersionResponse)},
    description='Body: `{"buildId": "v2"}` (no build id: the unversioned workers); `conflictToken` refuses the change if the deployment changed since.',
))
def set_worker_deployment_current_version(namespace: str, deployment_name: str):
    req = from_json(json_body(), ws.SetWorkerDeploymentCurrentVersionRequest)
    req.namespace, req.deployment_name = namespace, deployment_name
    req.identity = req.identity or IDENTITY
    return reply(invoke(
        Operation.SetWorkerDeploymentCurrentVersion, namespace,
        lambda f: f.set_worker_deployment_current_version(req), target=deployment_name,
    ))


@bp.post("/worker-deployments/<deployment_name>/set-ramping-version")
@documented(Doc(
    "Ramp a share of new work to a version", TAG, Operation.SetWorkerDeploymentRampingVersion,
    body=Body(ws.SetWorkerDeploymentRampingVersionRequest, _DEPLOYMENT),
    responses={200: Reply("The previous ramping version and percentage, and a new conflict token.", ws.SetWorkerDeploymentRampingVersionResponse)},
    description='Body: `{"buildId": "v2", "percentage": 30}`; `{}` ends the ramp. 400 INVALID_ARGUMENT outside 0-100.',
))
def set_worker_deployment_ramping_version(namespace: str, deployment_name: str):
    req = from_json(json_body(), ws.SetWorkerDeploymentRampingVersionRequest)
    req.namespace, req.deployment_name = namespace, deployment_name
    req.identity = req.identity or IDENTITY
    return reply(invoke(
        Operation.SetWorkerDeploymentRampingVersion, namespace,
        lambda f: f.set_worker_deployment_ramping_version(req), target=deployment_name,
    ))


def _version(deployment_name: str, build_id: str) -> WorkerDeploymentVersion:
    return WorkerDeploymentVersion(deployment_name=deployment_name, build_id=build_id)


@bp.get("/worker-deployment-versions/<deployment_name>/<build_id>")
@documented(Doc(
    "Describe a worker deployment version", TAG, Operation.DescribeWorkerDeploymentVersion,
    responses={200: Reply("Its status, routing times, ramp, drainage, metadata and task queues.", ws.DescribeWorkerDeploymentVersionResponse)},
))
def describe_worker_deployment_version(namespace: str, deployment_name: str, build_id: str):
    req = ws.DescribeWorkerDeploymentVersionRequest(namespace=namespace, deployment_version=_version(deployment_name, build_id))
    return reply(invoke(
        Operation.DescribeWorkerDeploymentVersion, namespace, lambda f: f.describe_worker_deployment_version(req)
    ))


@bp.delete("/worker-deployment-versions/<deployment_name>/<build_id>")
@documented(Doc(
    "Delete a worker deployment version", TAG, Operation.DeleteWorkerDeploymentVersion,
    responses={200: Reply("Deleted.", ws.DeleteWorkerDeploymentVersionResponse)},
    description="`?skipDrainage=true` deletes a draining version. 400 FAILED_PRECONDITION for the current or ramping version.",
))
def delete_worker_deployment_version(namespace: str, deployment_name: str, build_id: str):
    from flask import request

    req = ws.DeleteWorkerDeploymentVersionRequest(
        namespace=namespace,
        deployment_version=_version(deployment_name, build_id),
        skip_drainage=request.args.get("skipDrainage", "").lower() == "true",
        identity=IDENTITY,
    )
    return reply(invoke(
        Operation.DeleteWorkerDeploymentVersion, namespace,
        lambda f: f.delete_worker_deployment_version(req), target=f"{deployment_name}.{build_id}",
    ))


@bp.post("/worker-deployment-versions/<deployment_name>/<build_id>/update-metadata")
@documented(Doc(
    "Update a version's metadata", TAG, Operation.UpdateWorkerDeploymentVersionMetadata,
    body=Body(ws.UpdateWorkerDeploymentVersionMetadataRequest, _VERSION, required=True),
    responses={200: Reply("The version's metadata after the change.", ws.UpdateWorkerDeploymentVersionMetadataResponse)},
    description='Body: `{"upsertEntries": {"release": "r42"}, "removeEntries": ["old"]}`.',
))
def update_worker_deployment_version_metadata(namespace: str, deployment_name: str, build_id: str):
    req = from_json(json_body(), ws.UpdateWorkerDeploymentVersionMetadataRequest)
    req.namespace = namespace
    req.deployment_version.CopyFrom(_version(deployment_name, build_id))
    req.identity = req.identity or IDENTITY
    return reply(invoke(
        Operation.UpdateWorkerDeploymentVersionMetadata, namespace,
        lambda f: f.update_worker_deployment_version_metadata(req), target=f"{deployment_name}.{build_id}",
    ))
