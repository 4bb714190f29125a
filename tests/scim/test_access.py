"""SCIM refuses as SCIM (RFC 7644 section 3.12): 401 and 403 are SCIM errors, and change nothing."""

from __future__ import annotations

import pytest

from tests.api.test_access import (
    CALLS,
    KINDS,
    ROUTES,
    SCIM_RULES,
    UNAUTHENTICATED,
    World,
    allowed,
    audit_rows,
    send,
    world,  # noqa: F401 (the fixture)
)

pytestmark = pytest.mark.anyio

SCIM_ROUTES = [route for route in ROUTES if route in SCIM_RULES]
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.mark.parametrize("route", SCIM_ROUTES, ids=[f"{m} {p}" for m, p in SCIM_ROUTES])
async def test_refused_callers_get_scim_errors(
    world: World,  # noqa: F811
    route: tuple[str, str],
) -> None:
    before = await audit_rows(world.database)
    for kind in (kind for kind in KINDS if not allowed(route, kind)):
        response = await send(world.client, route[0], CALLS[route], world.headers[kind])
        status = 401 if kind in UNAUTHENTICATED else 403
        assert response.status_code == status, (kind, response.text)
        assert response.headers["Content-Type"] == "application/scim+json"
        body = response.json()
        assert body["schemas"] == [ERROR]
        assert body["status"] == str(status)
        assert body["detail"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await audit_rows(world.database) == before


def test_every_scim_route_is_in_the_matrix() -> None:
    assert len(SCIM_ROUTES) == len(SCIM_RULES) == 20
