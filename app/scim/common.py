"""What every /scim/v2 route shares: SCIM errors for every failure, bodies, paging, attributes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from scim2_models import ResponseParameters
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import preconditions
from app.auth import Role
from app.errors import Busy, DomainError, ListTooLong
from app.http_common import HTTPProblem, internal_error_detail, is_json, read_limited
from app.preconditions import IfMatch
from app.scim.discovery import MAX_RESULTS
from app.scim.errors import SCIM_JSON, ScimError, domain_error, invalid_value, scim_error
from app.scim.resources import base_url
from app.web.access import GuardedRoute

log = logging.getLogger("grouped_users.errors")

DEFAULT_COUNT = 100
# Far beyond any table, and within every database's 64-bit OFFSET.
MAX_OFFSET = 2**62


class ScimRoute(GuardedRoute):
    """A route whose every failure is a SCIM error (RFC 7644 section 3.12), 401, 403, 500 too."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def scim(request: Request) -> Response:
            try:
                return await handler(request)
            except ScimError as exc:
                return scim_error(request, exc.status, exc.detail, exc.scim_type)
            except DomainError as exc:
                return domain_error(request, exc)
            except PoolTimeout:
                return domain_error(request, Busy())
            except HTTPProblem as exc:
                return scim_error(request, exc.status, exc.detail, None, exc.headers)
            except RequestValidationError as exc:
                return scim_error(
                    request,
                    400,
                    f"The request is invalid: {exc.errors()[0]['msg']}.",
                    "invalidValue",
                )
            except Exception:
                # A SCIM client reads SCIM errors, a 500 too; the log has the cause.
                request_id = getattr(request.state, "request_id", "-")
                log.exception(
                    "unhandled error in %s %s (request id %s)",
                    request.method,
                    request.url.path,
                    request_id,
                )
                return scim_error(request, 500, internal_error_detail(request_id))

        return scim


class ScimSearchRoute(ScimRoute):
    """POST /.search only reads: readers may."""

    least_role = Role.reader


def base(request: Request) -> str:
    return base_url(str(request.base_url))


def max_members(request: Request) -> int:
    """How many members a group may have (GROUPED_USERS_MAX_LIST_LENGTH), and an answer show."""
    limit: int = request.app.state.settings.max_list_length
    return limit


def respond(
    body: dict[str, Any], status: int = 200, etag: str | None = None, location: str | None = None
) -> Response:
    headers = {}
    if etag is not None:
        headers["ETag"] = etag
    if location is not None:
        headers["Location"] = location
    return Response(json.dumps(body), status_code=status, headers=headers, media_type=SCIM_JSON)


async def read_body(request: Request) -> Any:
    raw = await read_limited(request, request.app.state.settings.max_body_bytes)
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        raise ScimError(
            415, f"The body must be application/scim+json or application/json, not {content_type}."
        )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScimError(400, f"The body is not valid JSON: {exc}.", "invalidSyntax") from None
    except RecursionError:
        raise ScimError(400, "The body is nested too deeply.", "invalidSyntax") from None
    check_lists(body, request.app.state.settings.max_list_length)
    return body


def check_lists(body: Any, limit: int) -> None:
    """Refuse a body with a list longer than `limit` anywhere in it, before any work.

    A PATCH's Operations are applied one by one and a group's members are
    each looked up: their number, not the body's size, is what costs.
    """
    pending: list[tuple[str, Any]] = [("", body)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            pending += (
                (f"{path}.{key}" if path else str(key), item) for key, item in value.items()
            )
        elif isinstance(value, list):
            if len(value) > limit:
                raise ListTooLong(path or "body", len(value), limit)
            pending += ((f"{path}[{index}]", item) for index, item in enumerate(value))


def if_match(request: Request) -> IfMatch | None:
    return preconditions.if_match(request.headers.get("if-match"))


def not_modified(request: Request, etag: str) -> Response | None:
    """A 304 when If-None-Match names the resource's current tag (or is `*`), else None."""
    if preconditions.none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"ETag": etag})
    return None


def _int(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise invalid_value(f"{name} must be an integer, not {value!r}.")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_value(f"{name} must be an integer, not {value!r}.") from None


@dataclass(frozen=True)
class Listing:
    """A list request: filter, 1-based startIndex, count and the attributes asked for."""

    filter: str | None
    start: int
    count: int
    parameters: ResponseParameters[Any]

    @property
    def offset(self) -> int:
        return min(self.start - 1, MAX_OFFSET)


def listing(source: dict[str, Any]) -> Listing:
    """startIndex below 1 is 1, count below 0 is 0, at most maxResults (RFC 7644, 3.4.2.4)."""
    start = max(_int(source.get("startIndex"), "startIndex", 1), 1)
    count = min(max(_int(source.get("count"), "count", DEFAULT_COUNT), 0), MAX_RESULTS)
    text = source.get("filter")
    if text is not None and not isinstance(text, str):
        raise ScimError(400, "filter must be a string.", "invalidFilter")
    return Listing(text or None, start, count, attributes(source))


def attributes(source: dict[str, Any]) -> ResponseParameters[Any]:
    """`attributes`, `excludedAttributes` (RFC 7644 section 3.9); unknown names select nothing."""
    given = {k: source.get(k) for k in ("attributes", "excludedAttributes") if source.get(k)}
    if len(given) == 2:
        raise invalid_value("attributes and excludedAttributes cannot be given together.")
    try:
        return ResponseParameters.model_validate(given)
    except ValidationError as exc:
        name = next(iter(given), "attributes")
        raise invalid_value(
            f"{name} {given.get(name)!r} is not a comma-separated list of attribute names:"
            f" {exc.errors()[0]['msg']}."
        ) from None


def wants(parameters: ResponseParameters[Any], attribute: str) -> bool:
    """Whether the response shows `attribute` (members are not even read otherwise)."""
    lowered = attribute.lower()
    if parameters.attributes:
        return any(_top(a) == lowered for a in parameters.attributes)
    excluded = [str(a).lower().split(":")[-1] for a in parameters.excluded_attributes or []]
    return lowered not in excluded


def asks_for(parameters: ResponseParameters[Any], path: str) -> bool:
    """Whether `attributes` names this sub-attribute (one returned only on request)."""
    lowered = path.lower()
    return any(str(a).lower().split(":")[-1] == lowered for a in parameters.attributes or [])


def _top(attribute: Any) -> str:
    return str(attribute).lower().split(":")[-1].split(".")[0]
