"""GET /ServiceProviderConfig, /ResourceTypes[/{id}], /Schemas[/{id}] (RFC 7644 section 4)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.scim import discovery
from app.scim.common import ScimRoute, base, max_members, respond
from app.scim.errors import PREFIX, ScimError

# Its own prefix, and added to the SCIM router's routes rather than included:
# an included router's routes keep their own path, which is what the
# metrics and logs name a route by.
router = APIRouter(prefix=PREFIX, route_class=ScimRoute, include_in_schema=False)


def _listed(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(items),
        "startIndex": 1,
        "itemsPerPage": len(items),
        "Resources": items,
    }


def _all(found: dict[str, dict[str, Any]]) -> Response:
    return respond(_listed(list(found.values())))


def _one(found: dict[str, dict[str, Any]], key: str, missing: str) -> Response:
    if key not in found:
        raise ScimError(404, missing)
    return respond(found[key])


def _schemas(request: Request) -> dict[str, dict[str, Any]]:
    return discovery.schemas(base(request), members_limit=max_members(request))


@router.get("/ServiceProviderConfig")
async def service_provider_config(request: Request) -> Response:
    """What this service provider supports: patch, filter, etag; no bulk, sort or passwords."""
    return respond(discovery.service_provider_config(base(request)))


@router.get("/ResourceTypes")
async def resource_types(request: Request) -> Response:
    """The resource types served: User and Group."""
    return _all(discovery.resource_types(base(request)))


@router.get("/ResourceTypes/{name}")
async def resource_type(name: str, request: Request) -> Response:
    """One resource type."""
    missing = f"There is no resource type {name!r}: there are User and Group."
    return _one(discovery.resource_types(base(request)), name, missing)


@router.get("/Schemas")
async def schemas(request: Request) -> Response:
    """The schemas of the resources, trimmed to the attributes stored."""
    return _all(_schemas(request))


@router.get("/Schemas/{urn}")
async def schema(urn: str, request: Request) -> Response:
    """One schema, by its URN."""
    return _one(_schemas(request), urn, f"There is no schema {urn!r} here.")
