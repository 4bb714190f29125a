"""/openapi.json documents every operation, its examples and all its errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api import create_app
from app.api.deps import GROUP_PARAMETER, USERID_PARAMETER, GroupPath, UseridPath
from app.settings import Settings
from tests.support.helpers import PROBLEM_JSON

pytestmark = pytest.mark.anyio

PROBLEM_REF = "#/components/schemas/Problem"
BODY_ERRORS = {
    400: {"malformed_json"},
    413: {"body_too_large"},
    415: {"unsupported_media_type"},
}
INTERNAL = {500: {"internal_error"}}


@dataclass(frozen=True)
class Operation:
    success: int
    takes_body: bool
    errors: dict[int, set[str]]  # status -> codes it can answer with


USER_404 = {404: {"user_not_found"}}
GROUP_404 = {404: {"group_not_found"}}
OPERATIONS = {
    ("/users/{userid}", "get"): Operation(200, False, USER_404 | INTERNAL),
    ("/users/{userid}", "post"): Operation(
        201,
        True,
        {409: {"user_exists"}, 422: {"invalid_record", "invalid_name", "unknown_groups"}}
        | BODY_ERRORS
        | INTERNAL,
    ),
    ("/users/{userid}", "put"): Operation(
        200,
        True,
        USER_404 | {422: {"invalid_record", "unknown_groups"}} | BODY_ERRORS | INTERNAL,
    ),
    ("/users/{userid}", "delete"): Operation(204, False, USER_404 | INTERNAL),
    ("/groups/{name}", "get"): Operation(200, False, GROUP_404 | INTERNAL),
    ("/groups/{name}", "post"): Operation(
        201,
        True,
        {409: {"group_exists"}, 422: {"invalid_name", "non_empty_body"}} | BODY_ERRORS | INTERNAL,
    ),
    ("/groups/{name}", "put"): Operation(
        200,
        True,
        GROUP_404 | {422: {"invalid_member_list", "unknown_users"}} | BODY_ERRORS | INTERNAL,
    ),
    ("/groups/{name}", "delete"): Operation(204, False, GROUP_404 | INTERNAL),
}
OPERATION_IDS = [pytest.param(path, method, id=f"{method} {path}") for path, method in OPERATIONS]


@pytest.fixture
def app() -> FastAPI:
    # No database: building the document never touches one.
    return create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", auth="disabled"))


@pytest.fixture
def schema(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


@pytest.fixture
async def docs_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref ("#/components/schemas/X") to what it names."""
    while "$ref" in node:
        target: dict[str, Any] = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def has_example(schema: dict[str, Any], media: dict[str, Any]) -> bool:
    """An example on the media type, or on the schema it shows (Swagger UI shows both)."""
    if media.get("example") is not None or media.get("examples"):
        return True
    shown = resolve(schema, media.get("schema", {}))
    return shown.get("example") is not None or bool(shown.get("examples"))


def operation(schema: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    operations: dict[str, Any] = schema["paths"][path]
    assert method in operations, sorted(operations)
    found: dict[str, Any] = operations[method]
    return found


@pytest.mark.parametrize(("path", "method"), OPERATION_IDS)
async def test_operation_has_summary_and_description(
    schema: dict[str, Any], path: str, method: str
) -> None:
    op = operation(schema, path, method)
    assert op.get("summary", "").strip()
    assert op.get("description", "").strip()


@pytest.mark.parametrize(("path", "method"), OPERATION_IDS)
async def test_request_body_has_schema_and_example(
    schema: dict[str, Any], path: str, method: str
) -> None:
    op = operation(schema, path, method)
    if not OPERATIONS[path, method].takes_body:
        assert "requestBody" not in op
        return
    media = op["requestBody"]["content"]["application/json"]
    assert resolve(schema, media["schema"])
    assert has_example(schema, media), media


@pytest.mark.parametrize(("path", "method"), OPERATION_IDS)
async def test_success_response_has_example(schema: dict[str, Any], path: str, method: str) -> None:
    expected = OPERATIONS[path, method].success
    responses = operation(schema, path, method)["responses"]
    successes = [status for status in responses if int(status) < 400 and int(status) != 304]
    assert successes == [str(expected)]
    response = responses[str(expected)]
    if expected == 204:
        assert not response.get("content")
        return
    media = response["content"]["application/json"]
    assert resolve(schema, media["schema"])
    assert has_example(schema, media), response


@pytest.mark.parametrize(("path", "method"), OPERATION_IDS)
async def test_every_error_it_can_give_is_documented_with_examples(
    schema: dict[str, Any], path: str, method: str
) -> None:
    responses = operation(schema, path, method)["responses"]
    for status, codes in OPERATIONS[path, method].errors.items():
        assert str(status) in responses, f"{method} {path} does not document {status}"
        media = responses[str(status)].get("content", {}).get(PROBLEM_JSON, {})
        examples = [example["value"] for example in media.get("examples", {}).values()]
        assert codes <= {example.get("code") for example in examples}, (status, examples)


@pytest.mark.parametrize(("path", "method"), OPERATION_IDS)
async def test_every_documented_error_is_a_problem(
    schema: dict[str, Any], path: str, method: str
) -> None:
    """Each 4xx/5xx is application/problem+json only, with the Problem schema."""
    responses = operation(schema, path, method)["responses"]
    for status, response in responses.items():
        if int(status) < 400:
            continue
        assert response.get("description"), status
        content = response.get("content", {})
        assert list(content) == [PROBLEM_JSON], (status, list(content))
        media = content[PROBLEM_JSON]
        assert media.get("schema") == {"$ref": PROBLEM_REF}, (status, media.get("schema"))
        assert media.get("examples"), status
        for example in media["examples"].values():
            value = example["value"]
            assert value["status"] == int(status)
            assert {"type", "title", "status", "detail", "code"} <= set(value)
            assert value["type"].endswith(value["code"])


async def test_problem_schema(schema: dict[str, Any]) -> None:
    problem = resolve(schema, {"$ref": PROBLEM_REF})
    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])
    assert {"type", "title", "status", "detail", "code", "errors"} == set(problem["properties"])
    field_error = resolve(schema, problem["properties"]["errors"]["items"])
    assert set(field_error["properties"]) == {"field", "message"}


async def test_record_schema_says_what_a_valid_record_is(schema: dict[str, Any]) -> None:
    body = operation(schema, "/users/{userid}", "post")["requestBody"]
    record = resolve(schema, body["content"]["application/json"]["schema"])
    assert set(record["properties"]) == {"first_name", "last_name", "userid", "groups"}
    assert set(record["required"]) == {"first_name", "last_name"}
    assert record.get("additionalProperties") is False
    assert record["properties"]["groups"].get("uniqueItems") is True


async def test_every_ref_resolves(schema: dict[str, Any]) -> None:
    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    for ref in refs(schema):
        assert ref.startswith("#/"), ref
        assert resolve(schema, {"$ref": ref}), ref


async def test_openapi_json_is_served(docs_client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await docs_client.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document == app.openapi()
    assert document["openapi"].startswith("3.")
    assert {"/users/{userid}", "/groups/{name}"} <= set(document["paths"])


async def test_docs_is_swagger_ui(docs_client: httpx.AsyncClient) -> None:
    response = await docs_client.get("/docs")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text


def _as_fastapi_declares() -> dict[str, Any]:
    """The path parameters FastAPI itself makes of UseridPath and GroupPath."""
    probe = FastAPI()

    @probe.get("/users/{userid}")
    async def user(userid: UseridPath) -> None:
        return None

    @probe.get("/groups/{name}")
    async def group(name: GroupPath) -> None:
        return None

    paths = probe.openapi()["paths"]
    return {path: paths[path]["get"]["parameters"] for path in paths}


@pytest.mark.parametrize(
    ("path", "parameter"),
    [("/users/{userid}", USERID_PARAMETER), ("/groups/{name}", GROUP_PARAMETER)],
)
async def test_hot_gets_document_their_path_parameter_as_fastapi_would(
    schema: dict[str, Any], path: str, parameter: dict[str, Any]
) -> None:
    # The hot GETs read it from request.path_params and declare it by hand.
    assert _as_fastapi_declares()[path] == [parameter]
    documented = schema["paths"][path]["get"]["parameters"]
    assert documented[0] == parameter
    assert [p["name"] for p in documented] == [parameter["name"], "If-None-Match"]
