"""The OpenAPI document: served publicly, lists exactly the routes the app registered under
/api/staff, and has the structure OpenAPI 3.1 requires (checked here by hand: no validator is
installed)."""

from __future__ import annotations

import re
from typing import Any

from gateway.staff import schemas
from gateway.staff.tests.conftest import StaffClient, StaffGateway, routed_paths

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
OPERATION_KEYS = {
    "tags",
    "summary",
    "description",
    "externalDocs",
    "operationId",
    "parameters",
    "requestBody",
    "responses",
    "callbacks",
    "deprecated",
    "security",
    "servers",
}


async def document(client: StaffClient) -> dict[str, Any]:
    reply = await client.get("/api/staff/openapi.json")
    assert reply.status == 200
    return reply.body


def refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [r for v in value.values() for r in refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs(v)]
    return []


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


async def test_document_lists_every_route_under_the_prefix(anonymous: StaffClient, gw: StaffGateway) -> None:
    doc = await document(anonymous)
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert documented == routed_paths(gw)


async def test_document_has_the_openapi_3_1_structure(anonymous: StaffClient) -> None:
    doc = await document(anonymous)
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    assert isinstance(doc["info"]["title"], str) and isinstance(doc["info"]["version"], str)
    assert set(doc) <= {
        "openapi",
        "info",
        "jsonSchemaDialect",
        "servers",
        "paths",
        "webhooks",
        "components",
        "security",
        "tags",
        "externalDocs",
    }
    schemes = doc["components"]["securitySchemes"]
    assert schemes["staffSession"] == {"type": "apiKey", "in": "cookie", "name": "citygw_staff"}
    assert schemes["csrfToken"] == {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"}
    operation_ids = []
    for path, item in doc["paths"].items():
        assert path.startswith("/api/staff/")
        templated = set(re.findall(r"\{(\w+)\}", path))
        for method, op in item.items():
            assert method in METHODS
            standard = {k for k in op if not k.startswith("x-")}  # x-… are allowed extensions
            assert standard <= OPERATION_KEYS, standard - OPERATION_KEYS
            operation_ids.append(op["operationId"])
            assert op["summary"] and op["responses"]
            for status, response in op["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d|default", status)
                assert isinstance(response["description"], str)
                for media in response.get("content", {}).values():
                    assert "schema" in media
            params = op.get("parameters", [])
            assert {p["name"] for p in params if p["in"] == "path"} == templated
            for p in params:
                assert p["in"] in {"path", "query", "header", "cookie"} and "schema" in p
                if p["in"] == "path":
                    assert p["required"] is True
            if "requestBody" in op:
                assert op["requestBody"]["content"] and all(
                    "schema" in m for m in op["requestBody"]["content"].values()
                )
            for requirement in op["security"]:
                assert set(requirement) <= set(schemes)
    assert len(operation_ids) == len(set(operation_ids)), "operationId must be unique"
    for ref in refs(doc):
        resolve(doc, ref)


async def test_document_is_generated_from_the_validation_models(anonymous: StaffClient) -> None:
    doc = await document(anonymous)
    components = doc["components"]["schemas"]
    login = doc["paths"]["/api/staff/login"]["post"]
    assert login["security"] == []
    body = resolve(doc, login["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert body["properties"].keys() == schemas.LoginIn.model_fields.keys()
    assert set(body["required"]) == {"username", "password"}
    create = doc["paths"]["/api/staff/broadcasts"]["post"]
    assert {"201", "200", "401", "403", "413"} <= set(create["responses"])
    assert create["security"] == [{"staffSession": [], "csrfToken": []}]
    assert create["x-roles"] == ["admin", "broadcaster"]
    model = resolve(doc, create["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert set(model["required"]) == {"kind", "title", "body", "audience", "idempotency_key"}
    assert model["properties"]["title"]["maxLength"] == 64 and model["properties"]["body"]["maxLength"] == 500
    assert "DistrictsAudience" in components and "GradeAudience" in components
    listing = doc["paths"]["/api/staff/broadcasts"]["get"]
    assert listing["security"] == [{"staffSession": []}]
    assert {p["name"] for p in listing["parameters"]} == {"kind", "limit"}
    detail = doc["paths"]["/api/staff/broadcasts/{id}"]["get"]
    assert detail["parameters"][0] == {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    upload = doc["paths"]["/api/staff/broadcasts/upload"]["post"]
    assert set(upload["requestBody"]["content"]) == {"text/plain", "text/csv"}
