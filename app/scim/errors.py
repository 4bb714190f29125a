"""SCIM error responses (RFC 7644 section 3.12): what every failure under /scim/v2 answers."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import JSONResponse
from scim2_models import Error

from app.errors import (
    Busy,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    PreconditionFailed,
    SearchTimedOut,
    Unauthenticated,
)
from app.http_common import error_headers

SCIM_JSON = "application/scim+json"
PREFIX = "/scim/v2"


class ScimError(Exception):
    """A failure the SCIM layer names itself: bad filter, bad value, bad syntax."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def invalid_filter(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidFilter")


# Domain error -> (status, scimType); subclasses are looked up before their bases.
DOMAIN_ERRORS: dict[type[DomainError], tuple[int, str | None]] = {
    NotFound: (404, None),
    Conflict: (409, "uniqueness"),
    PreconditionFailed: (412, None),
    Invalid: (400, "invalidValue"),
    Busy: (503, None),
    SearchTimedOut: (503, None),
    Unauthenticated: (401, None),
    Forbidden: (403, None),
}


def scim_error(
    request: Request,
    status: int,
    detail: str,
    scim_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = Error(status=status, detail=detail, scim_type=scim_type).model_dump()
    all_headers = dict(headers or {})
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        all_headers["X-Request-ID"] = request_id
    return JSONResponse(body, status_code=status, headers=all_headers, media_type=SCIM_JSON)


def domain_error(request: Request, exc: DomainError) -> JSONResponse:
    status, scim_type = next(
        DOMAIN_ERRORS[cls] for cls in type(exc).__mro__ if cls in DOMAIN_ERRORS
    )
    return scim_error(request, status, exc.detail, scim_type, error_headers(exc))


def http_error(
    request: Request, status: int, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Routing errors under /scim/v2: 404 for unknown paths, 405 for other methods."""
    detail = {
        404: f"Nothing is at {request.url.path}; SCIM resources are under {PREFIX}/Users and"
        f" {PREFIX}/Groups.",
        405: f"{request.method} is not allowed on {request.url.path}.",
    }.get(status, "The request could not be handled.")
    return scim_error(request, status, detail, None, headers)
