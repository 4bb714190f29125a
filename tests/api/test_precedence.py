"""One order of errors on every route: body → target and preconditions → references.

A request with several faults answers the first of: the body's syntax and
schema (400 / 422 invalid_*); the target's existence and the request's
preconditions (404 / 409 / 412); the resources its body names (422
unknown_*). Each case here has two or three faults at once, on both
databases.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.helpers import assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio

STALE = {"If-Match": '"999.999"'}
RECORD = {"first_name": "Joe", "last_name": "Smith"}
UNKNOWN_GROUPS = {**RECORD, "groups": ["ghosts"]}
SCIM = {"Content-Type": "application/scim+json"}
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
async def directory(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await create_group(client, "admins")
    await create_user(client, "joe", ["admins"])
    await create_group(client, "staff", ["joe"])
    return client


async def _send(
    client: httpx.AsyncClient, method: str, url: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(method, url, json=body, headers=headers)


# (method, url, body, headers, status, code): each has a later fault too.
CASES = [
    # The body first: a broken record beats an existing target and unknown groups.
    ("POST", "/users/joe", {"first_name": "Joe", "groups": ["ghosts"]}, {}, 422, "invalid_record"),
    ("PUT", "/users/nobody", {"groups": ["ghosts"]}, STALE, 422, "invalid_record"),
    (
        "PATCH",
        "/users/nobody",
        {"first_name": None, "groups": ["ghosts"]},
        {},
        422,
        "invalid_record",
    ),
    ("PUT", "/groups/nothing", ["joe", "joe"], STALE, 422, "invalid_member_list"),
    ("POST", "/groups/admins", ["joe"], {}, 422, "non_empty_body"),
    # The userid in the body must be the path's: part of reading the body.
    ("POST", "/users/joe", {**UNKNOWN_GROUPS, "userid": "ann"}, {}, 422, "invalid_record"),
    ("PUT", "/users/nobody", {**UNKNOWN_GROUPS, "userid": "ann"}, {}, 422, "invalid_record"),
    # Then the target: it exists (POST) or not (PUT, PATCH, DELETE), before references.
    ("POST", "/users/joe", UNKNOWN_GROUPS, {}, 409, "user_exists"),
    ("PUT", "/users/nobody", UNKNOWN_GROUPS, STALE, 404, "user_not_found"),
    ("PATCH", "/users/nobody", {"groups": ["ghosts"]}, STALE, 404, "user_not_found"),
    ("DELETE", "/users/nobody", None, STALE, 404, "user_not_found"),
    ("PUT", "/groups/nothing", ["nobody"], STALE, 404, "group_not_found"),
    ("DELETE", "/groups/nothing", None, STALE, 404, "group_not_found"),
    ("PUT", "/groups/nothing/members/nobody", None, {}, 404, "group_not_found"),
    # Then the preconditions, still before references.
    ("PUT", "/users/joe", UNKNOWN_GROUPS, STALE, 412, "precondition_failed"),
    ("PATCH", "/users/joe", {"groups": ["ghosts"]}, STALE, 412, "precondition_failed"),
    ("PUT", "/groups/admins", ["nobody"], STALE, 412, "precondition_failed"),
    # References last.
    ("POST", "/users/ann", UNKNOWN_GROUPS, {}, 422, "unknown_groups"),
    ("PUT", "/users/joe", UNKNOWN_GROUPS, {}, 422, "unknown_groups"),
    ("PATCH", "/users/joe", {"groups": ["ghosts"]}, {}, 422, "unknown_groups"),
    ("PUT", "/groups/admins", ["nobody"], {}, 422, "unknown_users"),
]


@pytest.mark.parametrize(
    ("method", "url", "body", "headers", "status", "code"),
    CASES,
    ids=[f"{case[0]} {case[1]} {case[4]} {case[5]}" for case in CASES],
)
async def test_the_first_fault_in_the_order_answers(
    directory: httpx.AsyncClient,
    method: str,
    url: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    before = (await directory.get("/users/joe")).json()
    response = await _send(directory, method, url, body, headers)
    assert_problem(response, status, code)
    # No fault leaves half a change behind.
    assert (await directory.get("/users/joe")).json() == before
    assert (await directory.get("/users/ann")).status_code == 404


async def test_scim_group_create_conflict_comes_before_unknown_members(
    directory: httpx.AsyncClient,
) -> None:
    team = {"schemas": [SCIM_GROUP], "displayName": "Team", "members": [{"value": "joe"}]}
    created = await directory.post("/scim/v2/Groups", json=team, headers=SCIM)
    assert created.status_code == 201, created.text
    clash = {**team, "displayName": "TEAM", "members": [{"value": "nobody"}]}
    response = await directory.post("/scim/v2/Groups", json=clash, headers=SCIM)
    assert response.status_code == 409, response.text
    stale = {"schemas": [SCIM_GROUP], "displayName": "Team", "members": [{"value": "nobody"}]}
    response = await directory.put(
        f"/scim/v2/Groups/{created.json()['id']}", json=stale, headers={**SCIM, **STALE}
    )
    assert response.status_code == 412, response.text
    response = await directory.put("/scim/v2/Groups/nothing", json=stale, headers={**SCIM, **STALE})
    assert response.status_code == 404, response.text
