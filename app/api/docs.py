"""OpenAPI: the error responses of each operation, with examples."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.problems import PROBLEM_JSON, domain_problem, http_problem, problem
from app.errors import (
    Busy,
    DomainError,
    FieldProblem,
    Forbidden,
    PreconditionFailed,
    Unauthenticated,
)
from app.http_common import HTTPProblem, internal_error_detail
from app.schemas import Problem

Example = DomainError | HTTPProblem | dict[str, Any]


def _example(error: Example) -> dict[str, Any]:
    if isinstance(error, DomainError):
        return domain_problem(error)
    if isinstance(error, HTTPProblem):
        return http_problem(error.status, error.detail, error.code)
    return error


def problem_responses(*errors: Example) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an operation that can fail with these errors (and a 500)."""
    by_status: dict[int, dict[str, Any]] = defaultdict(dict)
    for error in (*errors, INTERNAL_ERROR):
        example = _example(error)
        by_status[example["status"]][example["code"]] = {"value": example}
    return {
        status: {
            "model": Problem,
            "description": " or ".join(sorted({e["value"]["title"] for e in examples.values()})),
            "content": {PROBLEM_JSON: {"examples": examples}},
        }
        for status, examples in sorted(by_status.items())
    }


def validation_example(code: str, field: str, message: str) -> dict[str, Any]:
    return problem(
        422,
        code,
        "Invalid request body",
        f"The body is invalid: {field}: {message}.",
        [FieldProblem(field, message)],
    )


INTERNAL_ERROR = http_problem(500, internal_error_detail("3f2a…"))
MALFORMED_JSON = http_problem(400, "The body is not valid JSON: Expecting value at character 0.")
TOO_LARGE = http_problem(413, "The body is larger than the limit of 8388608 bytes.")
NOT_JSON = http_problem(415, "The body must be JSON (application/json), not text/plain.")
PRECONDITION_FAILED = PreconditionFailed("User 'jsmith'", '"42.3"')
REQUEST_TIMEOUT = http_problem(
    503, "The request took longer than 30 s and was abandoned; nothing changed.", "request_timeout"
)
BODY_ERRORS: tuple[Example, ...] = (MALFORMED_JSON, TOO_LARGE, NOT_JSON)


def _is_fastapi_422(response: dict[str, Any] | None) -> bool:
    if response is None:
        return False
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


# Probes answer without a token: a load balancer has none.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def _declare_bearer_auth(schema: dict[str, Any]) -> None:
    """Every operation takes a bearer token and can answer 401 and 403; and
    any can meet a busy database or the time limit (503) or a bug (500)."""
    schema["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`grouped-users token create`).",
        }
    }
    schema["security"] = [{"bearer": []}]
    refusals = problem_responses(Unauthenticated(), Forbidden("writer"), Busy(), REQUEST_TIMEOUT)
    for route, path in schema.get("paths", {}).items():
        for operation in path.values():
            statuses: tuple[int, ...] = (401, 403, 500, 503)
            if route in OPEN_PATHS:
                operation["security"] = []
                statuses = (500, 503)
            for status in statuses:
                response = dict(refusals[status])
                model = response.pop("model")
                response["content"][PROBLEM_JSON]["schema"] = {
                    "$ref": f"#/components/schemas/{model.__name__}"
                }
                operation["responses"].setdefault(str(status), response)
            if route == "/readyz":
                # Its 503 (not_ready) is a problem too.
                not_ready = http_problem(
                    503, "The schema is at revision 0001, not 0002.", "not_ready"
                )
                readyz = operation["responses"]["503"]
                readyz.setdefault("content", {}).setdefault(PROBLEM_JSON, {}).update(
                    {
                        "schema": {"$ref": "#/components/schemas/Problem"},
                        "example": not_ready,
                    }
                )


def install_openapi(app: FastAPI) -> None:
    """Error responses are problem+json only, as the handlers send them."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.get("responses", {})
                    # FastAPI adds a 422 in its own shape to every operation
                    # with parameters; ours declare their 422s themselves.
                    if _is_fastapi_422(responses.get("422")):
                        del responses["422"]
                    for status, response in responses.items():
                        content = response.get("content", {})
                        if int(status) >= 400 and "application/json" in content:
                            moved = content.pop("application/json")
                            content.setdefault(PROBLEM_JSON, {})["schema"] = moved["schema"]
            components = schema.setdefault("components", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                components.get("schemas", {}).pop(unused, None)
            _declare_bearer_auth(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
