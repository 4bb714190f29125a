"""The one table from errors to HTTP, and the handlers that answer with problem+json."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.api.ui import HEADERS as CONSOLE_HEADERS
from app.errors import (
    Busy,
    CursorExpired,
    DeliveryNotFound,
    DisplayNameTaken,
    DomainError,
    EventsOff,
    FieldProblem,
    Forbidden,
    GroupExists,
    GroupHasNoMembers,
    GroupNotFound,
    Invalid,
    InvalidCursor,
    InvalidName,
    InvalidSearch,
    InvalidToken,
    InvalidWebhook,
    ListTooLong,
    NonEmptyBody,
    NotAMember,
    NotCommitted,
    NullField,
    PreconditionFailed,
    SearchTimedOut,
    TokenExists,
    TokenNotFound,
    Unauthenticated,
    UnknownGroups,
    UnknownUsers,
    UserExists,
    UseridMismatch,
    UserNotFound,
    WebhookNotFound,
)
from app.http_common import HTTPProblem, error_headers, internal_error_detail
from app.schemas import error_location, error_message

log = logging.getLogger("grouped_users.errors")

PROBLEM_JSON = "application/problem+json"


# Domain error -> (status, code, title). Subclasses are looked up before their bases.
DOMAIN_ERRORS: dict[type[DomainError], tuple[int, str, str]] = {
    UserNotFound: (404, "user_not_found", "User not found"),
    GroupNotFound: (404, "group_not_found", "Group not found"),
    GroupHasNoMembers: (404, "group_not_found", "Group not found"),
    UserExists: (409, "user_exists", "User already exists"),
    GroupExists: (409, "group_exists", "Group already exists"),
    DisplayNameTaken: (409, "group_exists", "Group already exists"),
    InvalidName: (422, "invalid_name", "Invalid name"),
    UseridMismatch: (422, "invalid_record", "Invalid record"),
    UnknownGroups: (422, "unknown_groups", "Unknown groups"),
    UnknownUsers: (422, "unknown_users", "Unknown users"),
    NonEmptyBody: (422, "non_empty_body", "Body must be empty"),
    NotAMember: (404, "membership_not_found", "Not a member"),
    PreconditionFailed: (412, "precondition_failed", "Precondition failed"),
    InvalidCursor: (422, "invalid_cursor", "Invalid cursor"),
    InvalidSearch: (422, "invalid_query", "Invalid query"),
    NullField: (422, "invalid_record", "Invalid record"),
    Busy: (503, "database_busy", "Database busy"),
    NotCommitted: (503, "not_committed", "Not committed"),
    SearchTimedOut: (503, "search_timeout", "Search timed out"),
    Unauthenticated: (401, "unauthenticated", "Unauthenticated"),
    Forbidden: (403, "forbidden", "Forbidden"),
    TokenExists: (409, "token_exists", "Token already exists"),
    TokenNotFound: (404, "token_not_found", "Token not found"),
    InvalidToken: (422, "invalid_token_request", "Invalid token request"),
    ListTooLong: (422, "list_too_long", "List too long"),
    CursorExpired: (410, "cursor_expired", "Cursor expired"),
    EventsOff: (404, "events_off", "Change events are off"),
    WebhookNotFound: (404, "webhook_not_found", "Webhook not found"),
    DeliveryNotFound: (404, "delivery_not_found", "Delivery not found"),
    InvalidWebhook: (422, "invalid_webhook", "Invalid webhook"),
}
# Status of an HTTP-level error (routing, body parsing) -> (code, title).
HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("malformed_json", "Malformed JSON"),
    404: ("not_found", "Not found"),
    403: ("forbidden", "Forbidden"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("body_too_large", "Body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    421: ("misdirected_request", "Misdirected request"),
    # nginx's name for it: no answer reaches the client, the log and metrics do.
    499: ("client_closed_request", "Client closed request"),
    500: ("internal_error", "Internal server error"),
}

# What a 422 from schema validation is called, by the tag of the route.
INVALID_BODY_CODES = {
    "users": "invalid_record",
    "groups": "invalid_member_list",
    "tokens": "invalid_token_request",
    "webhooks": "invalid_webhook",
}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: Iterable[FieldProblem] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:grouped-users:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return body


def domain_problem(exc: DomainError) -> dict[str, Any]:
    status, code, title = next(
        DOMAIN_ERRORS[cls] for cls in type(exc).__mro__ if cls in DOMAIN_ERRORS
    )
    errors = exc.problems if isinstance(exc, Invalid) else None
    body = problem(status, code, title, exc.detail, errors)
    if isinstance(exc, CursorExpired):
        body["cursor"] = exc.cursor
    return body


def http_problem(status: int, detail: str, code: str | None = None) -> dict[str, Any]:
    default_code, title = HTTP_ERRORS.get(status, ("http_error", "HTTP error"))
    return problem(status, code or default_code, title, detail)


def respond(
    body: dict[str, Any], request: Request, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    all_headers = dict(headers or {})
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        all_headers["X-Request-ID"] = request_id
    return JSONResponse(
        body, status_code=body["status"], headers=all_headers, media_type=PROBLEM_JSON
    )


def field_name(loc: Sequence[int | str], body_name: str) -> str:
    """('body', 'groups', 2) -> 'groups[2]'; ('body', 2) -> 'members[2]'; ('body',) -> 'body'."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "path", "query", "header") else list(loc)
    name = ""
    for part in parts:
        if isinstance(part, int):
            name = f"{name or body_name}[{part}]"
        else:
            name = f"{name}.{part}" if name else str(part)
    return name or "body"


def _validation_problem(request: Request, exc: RequestValidationError) -> dict[str, Any]:
    errors = exc.errors()
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        reason = malformed.get("ctx", {}).get("error", "invalid JSON")
        position = malformed["loc"][-1]
        return http_problem(400, f"The body is not valid JSON: {reason} at character {position}.")
    route = request.scope.get("route")
    tags = getattr(route, "tags", None) or [""]
    body_field = getattr(route, "body_field", None)
    body_name = getattr(body_field, "alias", None) or "body"
    if all(e["loc"][0] == "query" for e in errors):
        code = "invalid_query"
    else:
        code = INVALID_BODY_CODES.get(str(tags[0]), "invalid_request")
    fields = [
        FieldProblem(
            field_name(error_location(e), body_name), error_message(e, resource="this resource")
        )
        for e in errors
    ]
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:3])
    more = f" (and {len(fields) - 3} more)" if len(fields) > 3 else ""
    where = "query" if code == "invalid_query" else "body"
    return problem(
        422, code, f"Invalid request {where}", f"The {where} is invalid: {summary}{more}.", fields
    )


def _allowed_methods(request: Request) -> list[str]:
    # Starlette's Allow names only the first route of the path; a path has
    # one route per method here.
    scope = {"type": "http", "path": request.url.path, "method": request.method, "root_path": ""}
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    if "GET" in methods:
        # The edge answers HEAD wherever GET is (app.api.middleware).
        methods.add("HEAD")
    return sorted(methods)


# How a protocol with its own error format answers a routing error (404, 405)
# under its path prefix: (request, status, headers) -> response.
RoutingErrorRenderer = Callable[[Request, int, Mapping[str, str]], Response]


def _renderer(
    request: Request, renderers: Mapping[str, RoutingErrorRenderer]
) -> RoutingErrorRenderer | None:
    path = request.url.path
    return next(
        (
            render
            for prefix, render in renderers.items()
            if path == prefix or path.startswith(prefix + "/")
        ),
        None,
    )


def install_problem_handlers(
    app: FastAPI, *, routing_errors: Mapping[str, RoutingErrorRenderer] | None = None
) -> None:
    """Answer errors with problem+json; routing errors under a `routing_errors` prefix its way."""
    renderers = dict(routing_errors or {})

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return respond(domain_problem(exc), request, error_headers(exc))

    @app.exception_handler(HTTPProblem)
    async def _http_problem(request: Request, exc: HTTPProblem) -> JSONResponse:
        return respond(http_problem(exc.status, exc.detail, exc.code), request, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return respond(_validation_problem(request, exc), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if (render := _renderer(request, renderers)) is not None:
            allow = (
                {"Allow": ", ".join(_allowed_methods(request))} if exc.status_code == 405 else {}
            )
            return render(request, exc.status_code, allow)
        detail = {
            404: f"Nothing is at {request.method} {request.url.path}; see /docs for the API.",
            405: f"{request.method} is not allowed on {request.url.path}.",
            400: "The body could not be parsed as JSON.",
        }.get(exc.status_code, str(exc.detail))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        if request.url.path == "/ui" or request.url.path.startswith("/ui/"):
            # The console's origin: its error pages are framed and scripted by nobody.
            headers.update(CONSOLE_HEADERS)
        return respond(http_problem(exc.status_code, detail), request, headers)

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every connection is busy for longer than GROUPED_USERS_DB_POOL_TIMEOUT:
        # say so at once rather than let requests pile up.
        log.warning("database pool exhausted (request id %s)", request.state.request_id)
        return respond(domain_problem(Busy()), request, error_headers(Busy()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "-")
        log.error(
            "unhandled error in %s %s (request id %s)",
            request.method,
            request.url.path,
            request_id,
            exc_info=exc,
        )
        detail = internal_error_detail(request_id)
        # This answer leaves from outside every middleware: it brings its own
        # security headers.
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
        return respond(http_problem(500, detail), request, headers)
