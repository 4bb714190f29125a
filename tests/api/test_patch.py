"""PATCH /users/{userid}: JSON merge patch (RFC 7396) of a user record."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.helpers import Seen, assert_problem, create_group, create_user, seen_by_get

pytestmark = pytest.mark.anyio

MERGE_PATCH = "application/merge-patch+json"
JSON_TYPES = [MERGE_PATCH, "application/json"]
GROUPS = ["admins", "staff", "users"]
JOE: dict[str, Any] = {
    "first_name": "Joe",
    "last_name": "Smith",
    "userid": "jsmith",
    "groups": ["admins", "staff"],
}
WATCHED = ["/users/jsmith", "/users/mjones", *(f"/groups/{name}" for name in GROUPS)]


@pytest.fixture
async def joe(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """jsmith (Joe Smith) in admins and staff; mjones in admins; users has no members."""
    for name in GROUPS:
        await create_group(client, name)
    await create_user(client, "mjones", groups=["admins"])
    record = {key: JOE[key] for key in ("first_name", "last_name", "groups")}
    assert (await client.post("/users/jsmith", json=record)).status_code == 201
    return client


async def patch(
    client: httpx.AsyncClient,
    body: Any,
    content_type: str | None = MERGE_PATCH,
    userid: str = "jsmith",
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {} if content_type is None else {"content-type": content_type}
    return await client.patch(f"/users/{userid}", content=content, headers=headers)


async def snapshot(client: httpx.AsyncClient) -> Seen:
    """Both users and every group as GET shows them, ETags included."""
    return await seen_by_get(client, WATCHED)


async def assert_both_sides(client: httpx.AsyncClient, groups: list[str]) -> None:
    """jsmith is in exactly these groups, seen from either side; mjones stays in admins."""
    record = (await client.get("/users/jsmith")).json()
    assert record["groups"] == sorted(groups)
    for name in GROUPS:
        response = await client.get(f"/groups/{name}")
        members = response.json() if response.status_code == 200 else []
        expected = {"jsmith"} if name in groups else set()
        if name == "admins":
            expected.add("mjones")
        assert members == sorted(expected), name
    assert (await client.get("/users/mjones")).json()["groups"] == ["admins"]


# (patch, the changes it makes to JOE): RFC 7396 section 3 and appendix A, on our fields.
APPLIED = [
    pytest.param({"last_name": "Smith-Jones"}, {"last_name": "Smith-Jones"}, id="one-member"),
    pytest.param({"first_name": "Joseph"}, {"first_name": "Joseph"}, id="other-member"),
    pytest.param(
        {"first_name": "Zoë", "last_name": "Ångström"},
        {"first_name": "Zoë", "last_name": "Ångström"},
        id="two-members-non-ascii",
    ),
    pytest.param({"groups": ["users"]}, {"groups": ["users"]}, id="array-replaced-whole"),
    pytest.param(
        {"groups": ["users", "admins"]}, {"groups": ["admins", "users"]}, id="array-sorted"
    ),
    pytest.param({"groups": []}, {"groups": []}, id="array-emptied"),
    pytest.param({"groups": None}, {"groups": []}, id="null-removes-groups"),
    pytest.param(
        {"groups": ["staff"], "last_name": "Smythe"},
        {"groups": ["staff"], "last_name": "Smythe"},
        id="groups-and-name",
    ),
    pytest.param({"userid": "jsmith"}, {}, id="userid-same-as-path"),
    pytest.param({"userid": "jsmith", "first_name": "Jo"}, {"first_name": "Jo"}, id="userid-too"),
    pytest.param({"first_name": "Joe"}, {}, id="same-value"),
    pytest.param({}, {}, id="empty-patch"),
]


@pytest.mark.parametrize("content_type", JSON_TYPES)
@pytest.mark.parametrize(("body", "changes"), APPLIED)
async def test_patch_changes_what_it_names_and_keeps_the_rest(
    joe: httpx.AsyncClient, content_type: str, body: dict[str, Any], changes: dict[str, Any]
) -> None:
    response = await patch(joe, body, content_type)
    assert response.status_code == 200, response.text
    expected = JOE | changes
    assert response.json() == expected
    assert (await joe.get("/users/jsmith")).json() == expected
    await assert_both_sides(joe, expected["groups"])


@pytest.mark.parametrize("content_type", ["application/merge-patch+json; charset=utf-8", None])
async def test_other_json_content_types_are_accepted(
    joe: httpx.AsyncClient, content_type: str | None
) -> None:
    response = await patch(joe, {"last_name": "Smythe"}, content_type)
    assert response.status_code == 200, response.text
    assert (await joe.get("/users/jsmith")).json() == JOE | {"last_name": "Smythe"}


async def test_patch_of_groups_keeps_both_sides_consistent(joe: httpx.AsyncClient) -> None:
    await assert_both_sides(joe, ["admins", "staff"])
    assert (await patch(joe, {"groups": ["staff", "users"]})).status_code == 200
    await assert_both_sides(joe, ["staff", "users"])
    assert (await joe.get("/groups/admins")).json() == ["mjones"]
    assert (await patch(joe, {"groups": None})).status_code == 200
    await assert_both_sides(joe, [])
    # Groups left empty still exist.
    for name in ("staff", "users"):
        assert_problem(await joe.get(f"/groups/{name}"), 404, "group_not_found")
        assert_problem(await joe.post(f"/groups/{name}"), 409, "group_exists")
    assert (await patch(joe, {"groups": ["users"]}, "application/json")).status_code == 200
    await assert_both_sides(joe, ["users"])
    assert (await joe.get("/groups/users")).json() == ["jsmith"]


# (patch, the code, the fields the problem names)
REFUSED = [
    pytest.param({"email": "j@example.com"}, "invalid_record", ["email"], id="unknown-field"),
    pytest.param(
        {"last_name": "New", "email": "j@example.com"},
        "invalid_record",
        ["email"],
        id="unknown-field-beside-valid",
    ),
    pytest.param([], "invalid_record", ["body"], id="patch-is-array"),
    pytest.param(["c"], "invalid_record", ["body"], id="patch-is-array-of-string"),
    pytest.param("x", "invalid_record", ["body"], id="patch-is-string"),
    pytest.param(42, "invalid_record", ["body"], id="patch-is-number"),
    pytest.param(None, "invalid_record", ["body"], id="patch-is-null"),
    pytest.param({"first_name": None}, "invalid_record", ["first_name"], id="null-first-name"),
    pytest.param({"last_name": None}, "invalid_record", ["last_name"], id="null-last-name"),
    pytest.param({"userid": None}, "invalid_record", ["userid"], id="null-userid"),
    pytest.param(
        {"first_name": None, "last_name": None},
        "invalid_record",
        ["first_name", "last_name"],
        id="null-both-names",
    ),
    pytest.param(
        {"first_name": None, "groups": ["users"]},
        "invalid_record",
        ["first_name"],
        id="null-beside-valid",
    ),
    pytest.param({"userid": "mjones"}, "invalid_record", ["userid"], id="userid-differs"),
    pytest.param({"userid": "JSMITH"}, "invalid_record", ["userid"], id="userid-case"),
    pytest.param({"userid": 5}, "invalid_record", ["userid"], id="userid-number"),
    pytest.param({"first_name": ""}, "invalid_record", ["first_name"], id="empty-name"),
    pytest.param({"first_name": "x" * 257}, "invalid_record", ["first_name"], id="long-name"),
    pytest.param({"last_name": "Sm\tith"}, "invalid_record", ["last_name"], id="control-char"),
    pytest.param({"first_name": 1}, "invalid_record", ["first_name"], id="name-number"),
    pytest.param({"first_name": ["Joe"]}, "invalid_record", ["first_name"], id="name-array"),
    pytest.param({"last_name": {"x": "y"}}, "invalid_record", ["last_name"], id="name-object"),
    pytest.param({"groups": "users"}, "invalid_record", ["groups"], id="groups-string"),
    pytest.param({"groups": {"users": None}}, "invalid_record", ["groups"], id="groups-object"),
    pytest.param({"groups": [1]}, "invalid_record", ["groups[0]"], id="groups-number"),
    pytest.param({"groups": ["users", None]}, "invalid_record", ["groups[1]"], id="group-null"),
    pytest.param({"groups": ["Users"]}, "invalid_record", ["groups[0]"], id="group-bad-name"),
    pytest.param(
        {"groups": ["users", "users"]}, "invalid_record", ["groups[1]"], id="group-duplicate"
    ),
    pytest.param(
        {"groups": ["users", "ghosts", "spooks"]},
        "unknown_groups",
        ["groups[1]", "groups[2]"],
        id="unknown-groups",
    ),
    pytest.param(
        {"groups": ["ghosts"], "last_name": "New"},
        "unknown_groups",
        ["groups[0]"],
        id="unknown-group-beside-valid",
    ),
]


@pytest.mark.parametrize("content_type", JSON_TYPES)
@pytest.mark.parametrize(("body", "code", "fields"), REFUSED)
async def test_refused_patch_is_422_and_changes_nothing(
    joe: httpx.AsyncClient, content_type: str, body: Any, code: str, fields: list[str]
) -> None:
    before = await snapshot(joe)
    problem = assert_problem(await patch(joe, body, content_type), 422, code)
    assert [error["field"] for error in problem["errors"]] == fields
    if code == "unknown_groups":
        assert all(name in problem["detail"] for name in body["groups"] if name != "users")
    if isinstance(body, dict) and fields[0] in body and body[fields[0]] is None:
        assert all(field in problem["detail"] for field in fields)
    assert await snapshot(joe) == before


@pytest.mark.parametrize("content", [b'{"last_name": ', b"{'last_name': 'X'}", b"{,}"])
async def test_malformed_json_is_400_and_changes_nothing(
    joe: httpx.AsyncClient, content: bytes
) -> None:
    before = await snapshot(joe)
    assert_problem(await patch(joe, content), 400, "malformed_json")
    assert await snapshot(joe) == before


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "application/x-www-form-urlencoded", "text/json"],
)
async def test_other_media_types_are_415_and_change_nothing(
    joe: httpx.AsyncClient, content_type: str
) -> None:
    before = await snapshot(joe)
    response = await patch(joe, {"last_name": "Smythe"}, content_type)
    assert_problem(response, 415, "unsupported_media_type")
    assert await snapshot(joe) == before


@pytest.mark.parametrize("userid", ["ghost", "JSmith", "j%20smith", "x" * 65, "-joe"])
@pytest.mark.parametrize("content_type", JSON_TYPES)
async def test_patch_of_unknown_user_is_404_and_creates_nothing(
    joe: httpx.AsyncClient, content_type: str, userid: str
) -> None:
    before = await snapshot(joe)
    body = {"first_name": "Ghost", "last_name": "Writer", "groups": ["users"]}
    response = await patch(joe, body, content_type, userid=userid)
    problem = assert_problem(response, 404, "user_not_found")
    if userid == "ghost":
        assert "ghost" in problem["detail"]
    assert_problem(await joe.get(f"/users/{userid}"), 404, "user_not_found")
    assert await snapshot(joe) == before
