"""What the edge of every request does for all routes: HEAD, bounded metric labels, /ui errors."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.api.ui import CONTENT_SECURITY_POLICY
from tests.support.helpers import assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio

REQUESTS = "grouped_users_requests_total"


async def _labels(client: httpx.AsyncClient) -> set[tuple[str, str]]:
    """(method, route) of every request counted so far."""
    exposition = (await client.get("/metrics")).text
    return {
        (sample.labels["method"], sample.labels["route"])
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == REQUESTS
    }


async def test_head_answers_as_get_without_a_body(client: httpx.AsyncClient) -> None:
    await create_user(client, "ada")
    await create_group(client, "staff", ["ada"])
    for path in [
        "/users",
        "/users/ada",
        "/groups/staff",
        "/healthz",
        "/ui",
        "/scim/v2/ServiceProviderConfig",
        "/users/nobody",
    ]:
        got = await client.get(path)
        head = await client.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        for name in ("content-type", "content-length", "etag"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
    etag = (await client.get("/users/ada")).headers["ETag"]
    unchanged = await client.head("/users/ada", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304


async def test_allow_lists_head_where_get_is(client: httpx.AsyncClient) -> None:
    refused = await client.post("/users")
    assert_problem(refused, 405, "method_not_allowed")
    assert refused.headers["Allow"] == "GET, HEAD"
    # No GET here: no HEAD either.
    await create_user(client, "ada")
    await create_group(client, "staff")
    membership = await client.head("/groups/staff/members/ada")
    assert membership.status_code == 405
    assert membership.headers["Allow"] == "DELETE, PUT"
    scim = await client.delete("/scim/v2/ServiceProviderConfig")
    assert scim.status_code == 405
    assert scim.headers["Allow"] == "GET, HEAD"


async def test_metric_labels_are_bounded(client: httpx.AsyncClient) -> None:
    # The metrics are the process's: other tests' requests are counted too.
    before = await _labels(client)
    for method in ["BREW", "PROPFIND", "X-" + "A" * 200]:
        assert (await client.request(method, "/users")).status_code == 405
    for i in range(5):
        assert (await client.get(f"/no/such/route-{i}")).status_code == 404
        assert (await client.request(f"M{i}", f"/nowhere-{i}")).status_code == 404
    assert (await client.head("/users")).status_code == 200
    labels = await _labels(client) - before
    assert {method for method, _ in labels} <= {"GET", "HEAD", "other"}, labels
    assert {route for _, route in labels} <= {"/users", "<unmatched>", "/metrics"}, labels
    everything = await _labels(client)
    assert {("other", "/users"), ("other", "<unmatched>"), ("HEAD", "/users")} <= everything


async def test_scim_discovery_routes_are_labelled_with_their_prefix(
    client: httpx.AsyncClient,
) -> None:
    for path in [
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/ResourceTypes",
        "/scim/v2/ResourceTypes/User",
        "/scim/v2/Schemas",
        "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
    ]:
        assert (await client.get(path)).status_code == 200, path
    routes = {route for _, route in await _labels(client)}
    assert {
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/ResourceTypes",
        "/scim/v2/ResourceTypes/{name}",
        "/scim/v2/Schemas",
        "/scim/v2/Schemas/{urn}",
    } <= routes
    assert all(route.startswith(("/", "<")) for route in routes)
    assert not {"/ServiceProviderConfig", "/ResourceTypes", "/Schemas"} & routes


async def test_console_errors_carry_its_policy(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/ui/nothing.js"),
        ("GET", "/ui/"),
        ("GET", "/ui/a/b"),
        ("POST", "/ui"),
    ]:
        response = await client.request(method, path)
        assert response.status_code in (404, 405), (method, path)
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Frame-Options"] == "DENY"
    # Elsewhere an error is API JSON, no page.
    assert "Content-Security-Policy" not in (await client.get("/nothing")).headers
