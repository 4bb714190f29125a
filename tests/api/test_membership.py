"""Membership is one fact seen from two sides (the contract's semantics; sorted lists)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.helpers import assert_problem, create_group, create_user, members_of

# The contract holds with auth disabled and with a writer token alike.
pytestmark = [pytest.mark.anyio, pytest.mark.with_writer_token]

# Python's sorted() is byte order, which both databases must also use.
TRICKY = ["b", "a", "a.b", "a-b", "a_b", "a@b", "0x"]
TRICKY_SORTED = ["0x", "a", "a-b", "a.b", "a@b", "a_b", "b"]


async def groups_of(client: httpx.AsyncClient, userid: str) -> list[str]:
    response = await client.get(f"/users/{userid}")
    assert response.status_code == 200, response.text
    groups: list[str] = response.json()["groups"]
    return groups


async def memberships(
    client: httpx.AsyncClient, userids: list[str], names: list[str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Both sides: each user's groups and each group's members."""
    by_user = {userid: await groups_of(client, userid) for userid in userids}
    by_group = {name: await members_of(client, name) for name in names}
    # The two sides state the same set of (user, group) facts.
    from_users = {(userid, name) for userid, groups in by_user.items() for name in groups}
    from_groups = {(userid, name) for name, members in by_group.items() for userid in members}
    assert from_users == from_groups
    return by_user, by_group


async def put_ok(client: httpx.AsyncClient, path: str, body: Any) -> Any:
    response = await client.put(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def directory(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Users a, b, c and the groups admins, staff, users, all empty."""
    for userid in ("a", "b", "c"):
        await create_user(client, userid)
    for name in ("admins", "staff", "users"):
        await create_group(client, name)
    return client


USERS = ["a", "b", "c"]
GROUPS = ["admins", "staff", "users"]


async def test_put_group_is_seen_by_its_members_and_nobody_else(
    directory: httpx.AsyncClient,
) -> None:
    assert await put_ok(directory, "/groups/admins", ["a", "b"]) == ["a", "b"]
    by_user, by_group = await memberships(directory, USERS, GROUPS)
    assert by_user == {"a": ["admins"], "b": ["admins"], "c": []}
    assert by_group == {"admins": ["a", "b"], "staff": [], "users": []}


async def test_put_group_replaces_and_removed_members_no_longer_list_it(
    directory: httpx.AsyncClient,
) -> None:
    await put_ok(directory, "/groups/admins", ["a", "b"])
    await put_ok(directory, "/groups/staff", ["a"])
    assert await put_ok(directory, "/groups/admins", ["c", "b"]) == ["b", "c"]
    by_user, _ = await memberships(directory, USERS, GROUPS)
    assert by_user == {"a": ["staff"], "b": ["admins"], "c": ["admins"]}
    assert await put_ok(directory, "/groups/admins", []) == []
    by_user, _ = await memberships(directory, USERS, GROUPS)
    assert by_user == {"a": ["staff"], "b": [], "c": []}


async def test_delete_user_leaves_every_group(directory: httpx.AsyncClient) -> None:
    await put_ok(directory, "/groups/admins", ["a", "b"])
    await put_ok(directory, "/groups/staff", ["a"])
    response = await directory.delete("/users/a")
    assert response.status_code == 204, response.text
    _, by_group = await memberships(directory, ["b", "c"], GROUPS)
    assert by_group == {"admins": ["b"], "staff": [], "users": []}
    # The emptied group still exists.
    assert_problem(await directory.post("/groups/staff"), 409, "group_exists")
    # A new user a starts with no memberships.
    await create_user(directory, "a")
    by_user, by_group = await memberships(directory, USERS, GROUPS)
    assert by_user == {"a": [], "b": ["admins"], "c": []}
    assert by_group["admins"] == ["b"]


async def test_delete_group_leaves_every_member(directory: httpx.AsyncClient) -> None:
    await put_ok(directory, "/groups/admins", ["a", "b"])
    await put_ok(directory, "/groups/staff", ["a"])
    response = await directory.delete("/groups/admins")
    assert response.status_code == 204, response.text
    by_user, _ = await memberships(directory, USERS, ["staff", "users"])
    assert by_user == {"a": ["staff"], "b": [], "c": []}
    # Naming the deleted group is now an unknown group.
    record = {"first_name": "B", "last_name": "B", "groups": ["admins"]}
    response = await directory.put("/users/b", json=record)
    assert_problem(response, 422, "unknown_groups")
    # POST creates it anew, empty: no member comes back.
    response = await directory.post("/groups/admins")
    assert response.status_code == 201, response.text
    assert response.json() == []
    by_user, by_group = await memberships(directory, USERS, GROUPS)
    assert by_user == {"a": ["staff"], "b": [], "c": []}
    assert by_group["admins"] == []
    assert_problem(await directory.get("/groups/admins"), 404, "group_not_found")


async def test_put_user_is_seen_by_the_groups(directory: httpx.AsyncClient) -> None:
    record = {"first_name": "A", "last_name": "A"}
    await put_ok(directory, "/users/a", record | {"groups": ["users", "admins"]})
    await put_ok(directory, "/groups/staff", ["b"])
    _, by_group = await memberships(directory, USERS, GROUPS)
    assert by_group == {"admins": ["a"], "staff": ["b"], "users": ["a"]}
    await put_ok(directory, "/users/a", record | {"groups": ["staff"]})
    _, by_group = await memberships(directory, USERS, GROUPS)
    assert by_group == {"admins": [], "staff": ["a", "b"], "users": []}
    await put_ok(directory, "/users/a", record)
    by_user, by_group = await memberships(directory, USERS, GROUPS)
    assert by_group == {"admins": [], "staff": ["b"], "users": []}
    assert by_user == {"a": [], "b": ["staff"], "c": []}


async def test_post_user_is_seen_by_the_groups(directory: httpx.AsyncClient) -> None:
    await put_ok(directory, "/groups/admins", ["a"])
    response = await directory.post(
        "/users/d", json={"first_name": "D", "last_name": "D", "groups": ["admins", "users"]}
    )
    assert response.status_code == 201, response.text
    _, by_group = await memberships(directory, [*USERS, "d"], GROUPS)
    assert by_group == {"admins": ["a", "d"], "staff": [], "users": ["d"]}


async def test_failed_changes_touch_neither_side(directory: httpx.AsyncClient) -> None:
    await put_ok(directory, "/groups/admins", ["a"])
    before = await memberships(directory, USERS, GROUPS)
    response = await directory.put("/groups/admins", json=["b", "ghost"])
    assert_problem(response, 422, "unknown_users")
    response = await directory.put(
        "/users/c", json={"first_name": "C", "last_name": "C", "groups": ["users", "ghosts"]}
    )
    assert_problem(response, 422, "unknown_groups")
    response = await directory.post(
        "/users/d", json={"first_name": "D", "last_name": "D", "groups": ["staff", "ghosts"]}
    )
    assert_problem(response, 422, "unknown_groups")
    assert_problem(await directory.post("/groups/staff"), 409, "group_exists")
    response = await directory.post("/groups/ops", json=["a"])
    assert_problem(response, 422, "non_empty_body")
    assert await memberships(directory, USERS, GROUPS) == before
    assert_problem(await directory.get("/users/d"), 404, "user_not_found")
    assert_problem(await directory.delete("/groups/ops"), 404, "group_not_found")


async def test_sorting_is_byte_order_on_both_sides(client: httpx.AsyncClient) -> None:
    assert sorted(TRICKY) == TRICKY_SORTED
    for name in TRICKY:
        await create_user(client, name)
        await create_group(client, name)
    await create_user(client, "u")
    await create_group(client, "g")
    # A group's members, set from the group side.
    assert await put_ok(client, "/groups/g", TRICKY) == TRICKY_SORTED
    assert await members_of(client, "g") == TRICKY_SORTED
    # A user's groups, set from the user side.
    record = {"first_name": "U", "last_name": "U", "groups": TRICKY}
    assert (await put_ok(client, "/users/u", record))["groups"] == TRICKY_SORTED
    assert await groups_of(client, "u") == TRICKY_SORTED
    # Each user's groups, set from the group side in unsorted order.
    for name in TRICKY:
        assert await put_ok(client, f"/groups/{name}", [*TRICKY, "u"]) == [*TRICKY_SORTED, "u"]
    by_user, by_group = await memberships(client, [*TRICKY, "u"], [*TRICKY, "g"])
    assert by_user == {"u": TRICKY_SORTED} | {name: [*TRICKY_SORTED, "g"] for name in TRICKY}
    assert by_group == {"g": TRICKY_SORTED} | {name: [*TRICKY_SORTED, "u"] for name in TRICKY}


async def test_user_created_with_groups_lists_them_sorted(client: httpx.AsyncClient) -> None:
    for name in TRICKY:
        await create_group(client, name)
    response = await client.post(
        "/users/u", json={"first_name": "U", "last_name": "U", "groups": TRICKY}
    )
    assert response.status_code == 201, response.text
    assert response.json()["groups"] == TRICKY_SORTED
    assert await groups_of(client, "u") == TRICKY_SORTED
    for name in TRICKY:
        assert await members_of(client, name) == ["u"]
