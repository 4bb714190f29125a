"""What the API and SCIM share of HTTP: errors of the exchange itself, request bodies,
the headers that go with a domain error, and what a 500 says.

Neither app.api nor app.scim is imported here: both build on it.
"""

from __future__ import annotations

import email.message
from collections.abc import Mapping

from fastapi import Request

from app.errors import Busy, DomainError, Unauthenticated


class HTTPProblem(Exception):
    """An error of the HTTP exchange itself (media type, size), not of a use case."""

    def __init__(
        self, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = dict(headers or {})


# Headers that go with an error, whichever protocol answers it.
_ERROR_HEADERS: dict[type[DomainError], dict[str, str]] = {
    # Seconds a client should wait before retrying an error that passes.
    Busy: {"Retry-After": "1"},
    Unauthenticated: {"WWW-Authenticate": 'Bearer realm="grouped-users"'},
}


def error_headers(exc: DomainError) -> dict[str, str]:
    """The headers of this error's answer (those of its nearest listed base)."""
    return next(
        (dict(_ERROR_HEADERS[cls]) for cls in type(exc).__mro__ if cls in _ERROR_HEADERS), {}
    )


def internal_error_detail(request_id: str) -> str:
    """What a 500 tells the client: never the cause, which the log has under this id."""
    return f"The server failed on this request; quote request id {request_id} to its operator."


def is_json(content_type: str | None) -> bool:
    """application/json or application/*+json; no Content-Type at all counts as JSON."""
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is declared or seen to be larger than `limit`."""
    too_large = HTTPProblem(
        413, "body_too_large", f"The body is larger than the limit of {limit} bytes."
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)
