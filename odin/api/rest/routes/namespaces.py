"""Namespaces: list, register, describe, update (``POST /{namespace}/update``, as in Temporal's
HTTP API) and delete (``DELETE /{namespace}``)."""

from __future__ import annotations

from flask import Blueprint, url_for
from temporalio.api.operatorservice.v1 import request_response_pb2 as ops
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from odin.api.rest.codec import from_json
from odin.api.rest.invoke import invoke
from odin.api.rest.openapi import Body, Doc, Reply, documented
from odin.api.rest.params import NEXT_PAGE_TOKEN, PAGE_SIZE, Param, json_body
from odin.api.rest.routes import reply
from odin.operations import Operation

bp = Blueprint("namespaces", __name__, url_prefix="/api/v1/namespaces")
TAG = "namespaces"


@bp.get("")
@documented(Doc(
    "List namespaces", TAG, Operation.ListNamespaces, params=(PAGE_SIZE, NEXT_PAGE_TOKEN),
    responses={200: Reply("A page of namespaces.", ws.ListNamespacesResponse)},
))
def list_namespaces():
    req = ws.ListNamespacesRequest(page_size=PAGE_SIZE.read() or 0, next_page_token=NEXT_PAGE_TOKEN.read())
    return reply(invoke(Operation.ListNamespaces, None, lambda f: f.list_namespaces(req)))


@bp.post("")
@documented(Doc(
    "Register a namespace", TAG, Operation.RegisterNamespace,
    body=Body(ws.RegisterNamespaceRequest, required=True),
    responses={201: Reply("Registered.", ws.RegisterNamespaceResponse, headers=("Location",))},
    description="409 ALREADY_EXISTS when the name is taken.",
))
def register_namespace():
    req = from_json(json_body(), ws.RegisterNamespaceRequest)
    response = invoke(Operation.RegisterNamespace, req.namespace, lambda f: f.register_namespace(req))
    return reply(response, 201, {"Location": url_for(".describe_namespace", namespace=req.namespace)})


@bp.get("/<namespace>")
@documented(Doc(
    "Describe a namespace", TAG, Operation.DescribeNamespace,
    responses={200: Reply("The namespace's info and configuration.", ws.DescribeNamespaceResponse)},
))
def describe_namespace(namespace: str):
    req = ws.DescribeNamespaceRequest(namespace=namespace)
    return reply(invoke(Operation.DescribeNamespace, namespace, lambda f: f.describe_namespace(req)))


@bp.get("/<namespace>/search-attributes")
@documented(Doc(
    "List search attributes", TAG, Operation.ListSearchAttributes,
    responses={200: Reply("The namespace's custom and the system search attributes.", ops.ListSearchAttributesResponse)},
))
def list_search_attributes(namespace: str):
    req = ops.ListSearchAttributesRequest(namespace=namespace)
    return reply(invoke(Operation.ListSearchAttributes, namespace, lambda f: f.list_search_attributes(req)))


FORCE = Param(
    "force", "query", {"type": "boolean"},
    "Also delete a namespace whose workflows are still running (they are terminated first).", False,
)


@bp.post("/<namespace>/update")
@documented(Doc(
    "Update a namespace", TAG, Operation.UpdateNamespace,
    body=Body(ws.UpdateNamespaceRequest, required=True),
    responses={200: Reply("The namespace as it is now.", ws.UpdateNamespaceResponse)},
    description="Description, owner and data (merged key by key) in updateInfo; retention and archival in config.",
))
def update_namespace(namespace: str):
    req = from_json(json_body(), ws.UpdateNamespaceRequest)
    req.namespace = namespace
    return reply(invoke(Operation.UpdateNamespace, namespace, lambda f: f.update_namespace(req)))


@bp.delete("/<namespace>")
@documented(Doc(
    "Delete a namespace", TAG, Operation.DeleteNamespace, params=(FORCE,),
    responses={200: Reply("Deleted: the name is free again; runs are purged in the background.", ops.DeleteNamespaceResponse)},
    description="400 FAILED_PRECONDITION while workflows run there, unless force=true.",
))
def delete_namespace(namespace: str):
    req = ops.DeleteNamespaceRequest(namespace=namespace)
    force = bool(FORCE.read())
    return reply(invoke(Operation.DeleteNamespace, namespace, lambda f: f.delete_namespace(req, force=force)))
