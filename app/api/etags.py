"""ETags on the API's answers: the If-Match and If-None-Match parameters, tagged responses.

What the headers mean is app.preconditions'; this is how FastAPI routes take and answer them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel

from app import preconditions
from app.preconditions import IfMatch
from app.service.common import Tagged

T = TypeVar("T")

ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": "The version of the resource, for If-Match and If-None-Match.",
        "schema": {"type": "string", "example": '"42.3"'},
    }
}


async def if_match(
    header: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="Apply the change only if the resource still has this ETag (else 412).",
        ),
    ] = None,
) -> IfMatch | None:
    return preconditions.if_match(header)


IfMatchHeader = Annotated[IfMatch | None, Depends(if_match)]
# If-None-Match on the hot GETs: read from the request and declared to
# OpenAPI as a route's openapi_extra. As a FastAPI header parameter its
# extraction and validation cost about a tenth of a point lookup.
_IF_NONE_MATCH: dict[str, Any] = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "Answer 304 Not Modified if the resource still has this ETag.",
    "schema": {"type": "string"},
}


def conditional_read(path_parameter: dict[str, Any]) -> dict[str, Any]:
    """openapi_extra of a hot GET: its path parameter (app.api.deps), then If-None-Match."""
    return {"parameters": [path_parameter, _IF_NONE_MATCH]}


def if_none_match(request: Request) -> str | None:
    return request.headers.get("if-none-match")


def not_modified(if_none_match: str | None, etag: str) -> Response | None:
    """A 304 when the client's copy is current (weak comparison), else None."""
    if preconditions.none_match(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return None


def json_page(items: list[str], next_cursor: str | None) -> Response:
    """A page (UserPage's shape) whose items are JSON texts built by the database.

    The route still declares its response_model (for OpenAPI); the items are
    joined as they are, not parsed into models and encoded again.
    """
    body = f'{{"items":[{",".join(items)}],"next_cursor":{json.dumps(next_cursor)}}}'
    return Response(body, media_type="application/json")


def tagged_json(value: BaseModel | str, etag: str) -> Response:
    """`value` as JSON with its ETag: a model encoded by its own Pydantic
    serializer, or JSON text as it is (built by the database).

    The route still declares its response_model (for OpenAPI); answering
    with a ready Response spares FastAPI validating the model a second time
    and a generic encoder on the hot path.
    """
    body = value if isinstance(value, str) else type(value).__pydantic_serializer__.to_json(value)
    return Response(body, media_type="application/json", headers={"ETag": etag})


def conditional_json(request: Request, found: Tagged[str]) -> Response:
    """A hot GET's answer: 304 when If-None-Match names the ETag, else the JSON text tagged."""
    return not_modified(if_none_match(request), found.etag) or tagged_json(found.value, found.etag)


def tagged(response: Response, stored: Tagged[T]) -> T:
    """A write's answer: the stored value (for the response_model), its ETag on `response`."""
    response.headers["ETag"] = stored.etag
    return stored.value
