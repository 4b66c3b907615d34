"""``/openapi.json``: a valid OpenAPI 3.1 document that describes exactly the app's routes, and a
schemathesis run over every documented operation that finds no server error."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from odin.api.rest import create_app
from odin.api.rest.openapi import openapi_path
from odin.config import Settings
from tests.support.services import migrated_sqlite_url


def test_the_document_is_valid_openapi_3_1(http):
    document = http.get("/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_documented_and_every_documented_path_is_served(app, http):
    document = http.get("/openapi.json").get_json()
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = {
        (openapi_path(rule.rule), method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == documented
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(openapi_path_params(path)), (method, path)


def test_each_api_route_names_its_operation(http):
    document = http.get("/openapi.json").get_json()
    for path, ops in document["paths"].items():
        if path.startswith("/api/"):
            for op in ops.values():
                assert op["x-odin-operation"], path


def openapi_path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


# -- fuzzing --------------------------------------------------------------------------------


@pytest.fixture
def fuzzed_app(tmp_path):
    url = migrated_sqlite_url(tmp_path / "fuzz.db")
    app = create_app(Settings(database_url=url, num_shards=2), config={"ODIN_LONG_POLL_SECONDS": 0.2})
    yield app
    app.extensions["odin"].close()


def test_no_generated_request_gets_a_server_error(fuzzed_app):
    # Operations are walked here rather than through schemathesis' pytest plugin, which reaches
    # into pytest's private node attributes and breaks between pytest releases.
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzzed_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {f"{method.upper()} {path}" for path, ops in schema.raw_schema["paths"].items() for method in ops}
    # schemathesis leaves out the document that describes the API itself.
    assert {operation.label for operation in operations} == documented - {"GET /openapi.json"}
    for operation in operations:
        fuzz_operation(operation)


def fuzz_operation(operation) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    def check(case):
        if "namespace" in (case.path_parameters or {}):
            # Mostly the namespace that exists, so requests get past namespace resolution.
            case.path_parameters["namespace"] = "default"
        response = case.call()
        checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
        if not (operation.label == UNANSWERED_QUERY and response.status_code == 504):
            checks.append(not_a_server_error)
        case.validate_response(response, checks=checks)

    check()


# A query to a run no worker serves is a gateway timeout by design (DEADLINE_EXCEEDED, as over gRPC).
UNANSWERED_QUERY = "POST /api/v1/namespaces/{namespace}/workflows/{workflow_id}/query/{query_type}"
