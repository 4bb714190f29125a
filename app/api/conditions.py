"""HTTP conditional requests (RFC 9110 §13): ETag, If-Match, If-None-Match."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Header, Response

from app.preconditions import IfMatch

_TAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')

ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "description": "The version of the resource, for If-Match and If-None-Match.",
        "schema": {"type": "string", "example": '"42.3"'},
    }
}


def _tags(value: str) -> list[tuple[bool, str]]:
    """(weak, tag) for each entity tag of a header value; unparsable parts are dropped."""
    return [(bool(weak), tag) for weak, tag in _TAG.findall(value)]


async def if_match(
    header: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="Apply the change only if the resource still has this ETag (else 412).",
        ),
    ] = None,
) -> IfMatch | None:
    if header is None:
        return None
    if header.strip() == "*":
        return IfMatch(None)
    # If-Match compares strongly: a weak tag never matches.
    return IfMatch(frozenset(tag for weak, tag in _tags(header) if not weak))


async def if_none_match(
    header: Annotated[
        str | None,
        Header(
            alias="If-None-Match",
            description="Answer 304 Not Modified if the resource still has this ETag.",
        ),
    ] = None,
) -> str | None:
    return header


IfMatchHeader = Annotated[IfMatch | None, Depends(if_match)]
IfNoneMatchHeader = Annotated[str | None, Depends(if_none_match)]


def not_modified(if_none_match: str | None, etag: str) -> Response | None:
    """A 304 when the client's copy is current (weak comparison), else None."""
    if if_none_match is None:
        return None
    if if_none_match.strip() == "*" or etag in {tag for _, tag in _tags(if_none_match)}:
        return Response(status_code=304, headers={"ETag": etag})
    return None
