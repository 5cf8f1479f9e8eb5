"""engine.api.openapi: the OpenAPI 3.1 document generated from the endpoint table and wire
shapes."""

from __future__ import annotations

import schemathesis

from engine.api import openapi, wire
from engine.api.routes import ENDPOINTS
from engine.errors import Code


def test_every_endpoint_and_method_is_an_operation_with_its_shapes():
    paths = openapi.document()["paths"]
    for endpoint in ENDPOINTS:
        for method in endpoint.methods:
            operation = paths[endpoint.path][method.lower()]
            answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
            assert answer == wire.RESPONSES[endpoint.shape]
            if method == "POST":
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                assert body == wire.REQUESTS[endpoint.shape]
    assert sum(len(methods) for methods in paths.values()) == 18


def test_every_code_of_the_table_is_documented_under_the_status_it_answers_with():
    codes = openapi.error_codes()
    assert {code for listed in codes.values() for code in listed} == {str(code) for code in Code}
    assert codes[413] == ["BODY_TOO_LARGE"]
    assert {"BACKUP_DAMAGED", "CHECKSUM_MISMATCH", "INCOMPLETE_BACKUP"} <= set(codes[400])
    assert codes[503] == ["STORAGE_ERROR", "UNAVAILABLE"]


def test_an_error_answer_names_only_the_codes_of_its_status():
    responses = openapi.document()["paths"]["/api/roots"]["post"]["responses"]
    schema = responses["413"]["content"]["application/json"]["schema"]
    assert schema["properties"]["error"]["properties"]["code"] == {"enum": ["BODY_TOO_LARGE"]}
    # the shared error shape is left as it was
    assert wire.ERROR_ANSWER["properties"]["error"]["properties"]["code"]["enum"] == [
        str(code) for code in Code
    ]


def test_schemathesis_reads_every_operation_of_the_document():
    schema = schemathesis.openapi.from_dict(openapi.document())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 18
