"""Contract of /groups/{name}: the name rules, the four group rows and their semantics."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from tests.support.helpers import assert_problem, create_group, create_user

# The contract holds with auth disabled and with a writer token alike.
pytestmark = [pytest.mark.anyio, pytest.mark.with_writer_token]

JSON_HEADERS = {"content-type": "application/json"}

# Names that break the rule: upper case, spaces, bad first character, too long, other characters.
BAD_NAMES = ["Admins", "aDmins", "the admins", "-admins", ".admins", "_admins", "@admins"]
BAD_NAMES += ["a" * 65, "admins+x", "admins!", "admins~x", "gröup", "ad,mins"]
GOOD_NAMES = ["a", "0", "0x", "g" * 64, "a.b_c-d@e", "team@example.com"]
RULE_WORDS = ["1-64 characters", "a-z", "0-9", "starting with a letter or digit"]


async def group_state(client: httpx.AsyncClient, name: str) -> list[str] | None:
    """The group's sorted members, [] for an empty group, None when there is no group.

    GET answers 404 both for an empty and for an unknown group; a PUT of [] then
    tells them apart, and changes nothing in an empty group.
    """
    response = await client.get(f"/groups/{name}")
    if response.status_code == 200:
        members: list[str] = response.json()
        return members
    assert_problem(response, 404, "group_not_found")
    response = await client.put(f"/groups/{name}", json=[])
    if response.status_code == 404:
        assert_problem(response, 404, "group_not_found")
        return None
    assert response.status_code == 200, response.text
    return []


async def user_groups(client: httpx.AsyncClient, userid: str) -> list[str]:
    response = await client.get(f"/users/{userid}")
    assert response.status_code == 200, response.text
    groups: list[str] = response.json()["groups"]
    return groups


def error_fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


# GET


async def test_get_lists_members_sorted(client: httpx.AsyncClient) -> None:
    for userid in ("carol", "alice", "bob"):
        await create_user(client, userid)
    await create_group(client, "admins", ["carol", "alice", "bob"])
    response = await client.get("/groups/admins")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == ["alice", "bob", "carol"]


async def test_get_unknown_group_is_404(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/groups/ghosts"), 404, "group_not_found")
    assert "ghosts" in body["detail"]


async def test_get_group_with_no_members_is_404(client: httpx.AsyncClient) -> None:
    await create_group(client, "admins")
    body = assert_problem(await client.get("/groups/admins"), 404, "group_not_found")
    assert "admins" in body["detail"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("name", BAD_NAMES)
async def test_lookup_with_a_name_breaking_the_rule_is_404(
    client: httpx.AsyncClient, method: str, name: str
) -> None:
    body: list[str] | None = [] if method == "PUT" else None
    response = await client.request(method, f"/groups/{name}", json=body)
    assert_problem(response, 404, "group_not_found")


async def test_lookup_is_case_sensitive(client: httpx.AsyncClient) -> None:
    await create_user(client, "alice")
    await create_group(client, "admins", ["alice"])
    assert_problem(await client.get("/groups/ADMINS"), 404, "group_not_found")


# POST


@pytest.mark.parametrize(
    "send",
    [
        pytest.param({}, id="no-body"),
        pytest.param({"json": []}, id="empty-list"),
        pytest.param({"content": b"[ ]", "headers": JSON_HEADERS}, id="empty-list-spaced"),
        pytest.param({"content": b"[]"}, id="empty-list-no-content-type"),
    ],
)
async def test_post_creates_an_empty_group(client: httpx.AsyncClient, send: dict[str, Any]) -> None:
    response = await client.post("/groups/admins", **send)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/groups/admins"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == []
    assert await group_state(client, "admins") == []


@pytest.mark.parametrize("name", GOOD_NAMES)
async def test_post_accepts_every_valid_name(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post(f"/groups/{name}")
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/groups/{name}"
    assert await group_state(client, name) == []


@pytest.mark.parametrize("body", [None, []], ids=["no-body", "empty-list"])
@pytest.mark.parametrize("members", [[], ["alice"]], ids=["empty", "with-members"])
async def test_post_existing_group_is_409_and_changes_nothing(
    client: httpx.AsyncClient, body: list[str] | None, members: list[str]
) -> None:
    await create_user(client, "alice")
    await create_group(client, "admins", members)
    response = await client.post("/groups/admins", json=body)
    problem = assert_problem(response, 409, "group_exists")
    assert "admins" in problem["detail"]
    assert await group_state(client, "admins") == members
    assert await user_groups(client, "alice") == (["admins"] if members else [])


@pytest.mark.parametrize(
    "body",
    [
        ["alice"],
        ["alice", "bob"],
        [""],
        [None],
        {},
        {"members": []},
        "alice",
        "",
        0,
        1,
        True,
        False,
    ],
)
async def test_post_with_a_non_empty_body_is_422_and_creates_nothing(
    client: httpx.AsyncClient, body: Any
) -> None:
    await create_user(client, "alice")
    problem = assert_problem(await client.post("/groups/admins", json=body), 422, "non_empty_body")
    assert problem["errors"], problem
    assert await group_state(client, "admins") is None
    assert await user_groups(client, "alice") == []


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_post_with_a_name_breaking_the_rule_is_422(
    client: httpx.AsyncClient, name: str
) -> None:
    problem = assert_problem(await client.post(f"/groups/{name}"), 422, "invalid_name")
    for words in RULE_WORDS:
        assert words in problem["detail"]
    assert error_fields(problem) == ["name"]
    assert await group_state(client, name) is None


@pytest.mark.parametrize("content", [b"{bad", b"[", b'["alice",]'])
async def test_post_malformed_json_is_400_and_creates_nothing(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post("/groups/admins", content=content, headers=JSON_HEADERS)
    assert_problem(response, 400, "malformed_json")
    assert await group_state(client, "admins") is None


# PUT


async def test_put_replaces_the_members(client: httpx.AsyncClient) -> None:
    for userid in ("alice", "bob", "carol"):
        await create_user(client, userid)
    await create_group(client, "admins", ["alice", "bob"])
    response = await client.put("/groups/admins", json=["carol", "bob"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == ["bob", "carol"]
    assert await group_state(client, "admins") == ["bob", "carol"]
    assert await user_groups(client, "alice") == []


async def test_put_empty_list_empties_the_group_but_keeps_it(client: httpx.AsyncClient) -> None:
    await create_user(client, "alice")
    await create_group(client, "admins", ["alice"])
    response = await client.put("/groups/admins", json=[])
    assert response.status_code == 200, response.text
    assert response.json() == []
    assert_problem(await client.get("/groups/admins"), 404, "group_not_found")
    assert_problem(await client.post("/groups/admins"), 409, "group_exists")
    assert await user_groups(client, "alice") == []


async def test_put_unknown_group_is_404_and_creates_nothing(client: httpx.AsyncClient) -> None:
    await create_user(client, "alice")
    response = await client.put("/groups/ghosts", json=["alice"])
    assert_problem(response, 404, "group_not_found")
    assert await group_state(client, "ghosts") is None
    assert await user_groups(client, "alice") == []


INVALID_LISTS = [
    pytest.param(["alice", "alice"], "members[1]", id="duplicate"),
    pytest.param(["alice", "bob", "alice"], "members[2]", id="duplicate-later"),
    pytest.param([1], "members[0]", id="number"),
    pytest.param(["alice", 2], "members[1]", id="number-later"),
    pytest.param([None], "members[0]", id="null-entry"),
    pytest.param([["alice"]], "members[0]", id="nested-list"),
    pytest.param([{"userid": "alice"}], "members[0]", id="object-entry"),
    pytest.param(["Alice"], "members[0]", id="upper-case"),
    pytest.param(["alice", "b o b"], "members[1]", id="space"),
    pytest.param([""], "members[0]", id="empty-name"),
    pytest.param(["-alice"], "members[0]", id="bad-first-character"),
    pytest.param(["a" * 65], "members[0]", id="too-long"),
    pytest.param({"members": ["alice"]}, "body", id="object"),
    pytest.param({}, "body", id="empty-object"),
    pytest.param("alice", "body", id="string"),
    pytest.param(1, "body", id="number-body"),
    pytest.param(None, "body", id="null-body"),
]


@pytest.mark.parametrize(("members", "field"), INVALID_LISTS)
async def test_put_invalid_list_is_422_and_changes_nothing(
    client: httpx.AsyncClient, members: Any, field: str
) -> None:
    await create_user(client, "alice")
    await create_user(client, "bob")
    await create_group(client, "admins", ["bob"])
    response = await client.put("/groups/admins", json=members)
    problem = assert_problem(response, 422, "invalid_member_list")
    assert field in error_fields(problem), problem
    assert await group_state(client, "admins") == ["bob"]
    assert await user_groups(client, "alice") == []


async def test_put_duplicate_is_422_naming_it(client: httpx.AsyncClient) -> None:
    await create_user(client, "alice")
    await create_user(client, "bob")
    await create_group(client, "admins")
    response = await client.put("/groups/admins", json=["alice", "bob", "alice"])
    problem = assert_problem(response, 422, "invalid_member_list")
    assert problem["errors"] == [
        {"field": "members[2]", "message": "'alice' is listed more than once"}
    ]
    assert "'alice'" in problem["detail"]
    assert await group_state(client, "admins") == []


async def test_put_missing_body_is_422(client: httpx.AsyncClient) -> None:
    await create_user(client, "alice")
    await create_group(client, "admins", ["alice"])
    assert_problem(await client.put("/groups/admins"), 422, "invalid_member_list")
    assert await group_state(client, "admins") == ["alice"]


async def test_put_unknown_users_is_422_listing_them_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await create_user(client, "alice")
    await create_user(client, "carol")
    await create_group(client, "admins", ["carol"])
    response = await client.put("/groups/admins", json=["bob", "alice", "zed"])
    problem = assert_problem(response, 422, "unknown_users")
    assert "'bob'" in problem["detail"]
    assert "'zed'" in problem["detail"]
    assert "'alice'" not in problem["detail"]
    assert sorted(error_fields(problem)) == ["members[0]", "members[2]"]
    assert await group_state(client, "admins") == ["carol"]
    assert await user_groups(client, "alice") == []
    assert await user_groups(client, "carol") == ["admins"]
    # Unknown users are not created on the way.
    for userid in ("bob", "zed"):
        assert_problem(await client.get(f"/users/{userid}"), 404, "user_not_found")


@pytest.mark.parametrize("content", [b"{bad", b'["alice"', b'["alice",]', b"['alice']"])
async def test_put_malformed_json_is_400_and_changes_nothing(
    client: httpx.AsyncClient, content: bytes
) -> None:
    await create_user(client, "alice")
    await create_group(client, "admins", ["alice"])
    response = await client.put("/groups/admins", content=content, headers=JSON_HEADERS)
    assert_problem(response, 400, "malformed_json")
    assert await group_state(client, "admins") == ["alice"]


# DELETE


async def test_delete_removes_the_group_and_its_memberships(client: httpx.AsyncClient) -> None:
    await create_user(client, "alice")
    await create_group(client, "admins", ["alice"])
    await create_group(client, "users", ["alice"])
    response = await client.delete("/groups/admins")
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await group_state(client, "admins") is None
    assert await group_state(client, "users") == ["alice"]
    assert await user_groups(client, "alice") == ["users"]
    assert_problem(await client.delete("/groups/admins"), 404, "group_not_found")


async def test_delete_unknown_group_is_404(client: httpx.AsyncClient) -> None:
    await create_group(client, "users")
    assert_problem(await client.delete("/groups/ghosts"), 404, "group_not_found")
    assert await group_state(client, "users") == []


# A created group with no members exists (the contract's semantics).


async def test_created_empty_group_exists(client: httpx.AsyncClient) -> None:
    await create_group(client, "admins")
    assert_problem(await client.get("/groups/admins"), 404, "group_not_found")
    assert_problem(await client.post("/groups/admins"), 409, "group_exists")
    assert_problem(await client.post("/groups/admins", json=[]), 409, "group_exists")
    response = await client.delete("/groups/admins")
    assert response.status_code == 204, response.text
    assert_problem(await client.delete("/groups/admins"), 404, "group_not_found")
    assert_problem(await client.put("/groups/admins", json=[]), 404, "group_not_found")
    response = await client.post("/groups/admins")
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("members", [[], ["alice"], ["bob", "alice"]])
async def test_put_to_created_empty_group_works(
    client: httpx.AsyncClient, members: list[str]
) -> None:
    await create_user(client, "alice")
    await create_user(client, "bob")
    await create_group(client, "admins")
    response = await client.put("/groups/admins", json=members)
    assert response.status_code == 200, response.text
    assert response.json() == sorted(members)
    if members:
        assert (await client.get("/groups/admins")).json() == sorted(members)
    else:
        assert_problem(await client.get("/groups/admins"), 404, "group_not_found")
    assert_problem(await client.post("/groups/admins"), 409, "group_exists")


async def test_members_come_sorted_by_byte_order_whatever_the_order_of_joining(
    client: httpx.AsyncClient,
) -> None:
    # GET /groups/{name} builds its JSON array in SQL: the order must still be
    # exact byte order (Python's sorted()), on both databases, whatever the order
    # in which members joined or their row ids.
    userids = [f"{stem}{n}" for n in range(40) for stem in ("a-", "a.", "a_", "a@", "a", "z")]
    joining = list(userids)
    random.Random(7).shuffle(joining)
    for userid in joining:
        await create_user(client, userid)
    await create_group(client, "crowd")
    for userid in reversed(joining):
        response = await client.put(f"/groups/crowd/members/{userid}")
        assert response.status_code == 204, response.text
    response = await client.get("/groups/crowd")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == sorted(userids)
    assert response.headers["etag"]
