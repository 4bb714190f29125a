"""How the resource routes are declared: their routers, and the routes that answer 204."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response, status
from fastapi.types import DecoratedCallable

from app.api.docs import Example, problem_responses
from app.api.etags import ETAG_HEADER, conditional_read
from app.web.access import GuardedRoute

NOT_MODIFIED: dict[str, Any] = {
    "description": "Not modified: the ETag still matches",
    "headers": ETAG_HEADER,
}


def resource_router(name: str) -> APIRouter:
    """The router of /<name>, tagged <name>, every route guarded by the access rules.

    strict_content_type=False as the app (the contract: a body without
    Content-Type is JSON): these routes are added to the app directly, not
    through include_router, so they do not inherit the app's setting.
    """
    return APIRouter(
        prefix=f"/{name}", tags=[name], route_class=GuardedRoute, strict_content_type=False
    )


def conditional_get(
    router: APIRouter,
    path: str,
    *errors: Example,
    model: Any,
    ok: dict[str, Any],
    parameter: dict[str, Any],
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A hot GET: `ok` (200, tagged), 304 when If-None-Match names the ETag, or these errors.

    `parameter` declares the path parameter the route reads itself
    (app.api.deps): the hot GETs take the request, not FastAPI parameters.
    """
    return router.get(
        path,
        response_model=model,
        responses={200: ok, 304: NOT_MODIFIED, **problem_responses(*errors)},
        openapi_extra=conditional_read(parameter),
    )


def no_content(
    router: APIRouter, method: str, path: str, *errors: Example
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A route that answers 204 with no body, or one of these errors."""
    return router.api_route(
        path,
        methods=[method],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses=problem_responses(*errors),
    )


def done() -> Response:
    """The answer of a no_content route."""
    return Response(status_code=status.HTTP_204_NO_CONTENT)
