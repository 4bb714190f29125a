"""Single memberships: PUT and DELETE /groups/{name}/members/{userid}."""

from __future__ import annotations

import httpx
import pytest

from tests.support.helpers import (
    PROBLEM_JSON,
    Seen,
    assert_problem,
    create_group,
    create_user,
    seen_by_get,
)

pytestmark = pytest.mark.anyio

USERS = ["a", "b", "c"]
GROUPS = ["admins", "staff"]
WATCHED = [*(f"/users/{u}" for u in USERS), *(f"/groups/{g}" for g in GROUPS), "/groups"]


@pytest.fixture
async def directory(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Users a, b, c; admins has member b, staff has none."""
    for userid in USERS:
        await create_user(client, userid)
    await create_group(client, "admins", ["b"])
    await create_group(client, "staff")
    return client


def member(name: str, userid: str) -> str:
    return f"/groups/{name}/members/{userid}"


async def snapshot(client: httpx.AsyncClient) -> Seen:
    """Every user and group as GET shows them, ETags and member counts included."""
    return await seen_by_get(client, WATCHED)


async def both_sides(client: httpx.AsyncClient) -> dict[str, list[str]]:
    """Each group's members; checks that the users' groups state the same facts."""
    by_group: dict[str, list[str]] = {}
    for name in GROUPS:
        response = await client.get(f"/groups/{name}")
        if response.status_code == 404:
            assert_problem(response, 404, "group_not_found")
        by_group[name] = response.json() if response.status_code == 200 else []
    from_groups = {(u, g) for g, members in by_group.items() for u in members}
    from_users: set[tuple[str, str]] = set()
    for userid in USERS:
        response = await client.get(f"/users/{userid}")
        if response.status_code == 200:
            from_users |= {(userid, g) for g in response.json()["groups"]}
    assert from_users == from_groups
    listing = (await client.get("/groups")).json()["items"]
    assert {item["name"]: item["member_count"] for item in listing} == {
        name: len(members) for name, members in by_group.items()
    }
    return by_group


def assert_no_content(response: httpx.Response) -> None:
    assert response.status_code == 204, response.text
    assert response.content == b""


@pytest.mark.parametrize(
    ("name", "members"), [("admins", ["a", "b"]), ("staff", ["a"])], ids=["with-members", "empty"]
)
async def test_put_member_adds_once_and_again_changes_nothing(
    directory: httpx.AsyncClient, name: str, members: list[str]
) -> None:
    before = await snapshot(directory)
    assert_no_content(await directory.put(member(name, "a")))
    assert (await directory.get(f"/groups/{name}")).json() == members
    assert (await directory.get("/users/a")).json()["groups"] == [name]
    after = await snapshot(directory)
    # A membership change is a change of the user and of the group.
    for path in ("/users/a", f"/groups/{name}"):
        assert after[path][2] != before[path][2], path
    assert after["/users/b"] == before["/users/b"]
    for _ in range(2):
        assert_no_content(await directory.put(member(name, "a")))
        assert await snapshot(directory) == after
    assert (await both_sides(directory))[name] == members


async def test_put_of_a_membership_made_by_a_whole_list_changes_nothing(
    directory: httpx.AsyncClient,
) -> None:
    before = await snapshot(directory)
    assert_no_content(await directory.put(member("admins", "b")))
    assert await snapshot(directory) == before


async def test_delete_member_removes_it_then_answers_404(directory: httpx.AsyncClient) -> None:
    assert (await directory.put("/groups/admins", json=["a", "b", "c"])).status_code == 200
    assert_no_content(await directory.delete(member("admins", "a")))
    assert await both_sides(directory) == {"admins": ["b", "c"], "staff": []}
    assert (await directory.get("/users/a")).json()["groups"] == []
    before = await snapshot(directory)
    problem = assert_problem(
        await directory.delete(member("admins", "a")), 404, "membership_not_found"
    )
    assert "'a'" in problem["detail"]
    assert "'admins'" in problem["detail"]
    assert await snapshot(directory) == before


async def test_removing_the_last_member_keeps_the_group(directory: httpx.AsyncClient) -> None:
    assert_no_content(await directory.delete(member("admins", "b")))
    assert await both_sides(directory) == {"admins": [], "staff": []}
    assert_problem(await directory.get("/groups/admins"), 404, "group_not_found")
    assert_problem(await directory.post("/groups/admins"), 409, "group_exists")
    assert_no_content(await directory.put(member("admins", "c")))
    assert (await directory.get("/groups/admins")).json() == ["c"]


# (method, group, user, the code, what the detail names)
MISSING = [
    pytest.param("PUT", "ghosts", "a", "group_not_found", "ghosts", id="put-unknown-group"),
    pytest.param("PUT", "admins", "ghost", "user_not_found", "ghost", id="put-unknown-user"),
    pytest.param("DELETE", "ghosts", "b", "group_not_found", "ghosts", id="delete-unknown-group"),
    pytest.param("DELETE", "admins", "ghost", "user_not_found", "ghost", id="delete-unknown-user"),
    pytest.param("DELETE", "admins", "a", "membership_not_found", "a", id="delete-not-a-member"),
    pytest.param("DELETE", "staff", "b", "membership_not_found", "b", id="delete-from-empty"),
]


@pytest.mark.parametrize(("method", "name", "userid", "code", "named"), MISSING)
async def test_missing_group_user_or_membership_is_a_404_saying_which(
    directory: httpx.AsyncClient, method: str, name: str, userid: str, code: str, named: str
) -> None:
    before = await snapshot(directory)
    problem = assert_problem(await directory.request(method, member(name, userid)), 404, code)
    assert f"'{named}'" in problem["detail"]
    assert await snapshot(directory) == before


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_both_missing_is_a_404_naming_one_of_them(
    directory: httpx.AsyncClient, method: str
) -> None:
    before = await snapshot(directory)
    response = await directory.request(method, member("ghosts", "ghost"))
    assert response.status_code == 404, response.text
    code = response.json()["code"]
    assert code in ("group_not_found", "user_not_found")
    named = "ghosts" if code == "group_not_found" else "ghost"
    assert f"'{named}'" in assert_problem(response, 404, code)["detail"]
    assert await snapshot(directory) == before


# (path segment, whether it reaches the members routes at all)
BAD_NAMES = [
    pytest.param("Admins", True, id="upper-case"),
    pytest.param("a%20b", True, id="space"),
    pytest.param("z%C3%B6e", True, id="non-ascii"),
    pytest.param("x" * 65, True, id="65-characters"),
    pytest.param("-x", True, id="leading-dash"),
    pytest.param("a%00b", True, id="nul"),
    pytest.param("a%2Fb", False, id="encoded-slash"),
]


@pytest.mark.parametrize(("bad", "routed"), BAD_NAMES)
@pytest.mark.parametrize("side", ["group", "user"])
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_names_breaking_the_rule_are_404(
    directory: httpx.AsyncClient, method: str, side: str, bad: str, routed: bool
) -> None:
    before = await snapshot(directory)
    path = member(bad, "b") if side == "group" else member("admins", bad)
    response = await directory.request(method, path)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    code = f"{side}_not_found" if routed else "not_found"
    assert_problem(response, 404, code)
    assert await snapshot(directory) == before


async def test_single_memberships_and_whole_lists_agree(directory: httpx.AsyncClient) -> None:
    assert (await directory.put("/groups/admins", json=["a", "b"])).status_code == 200
    assert_no_content(await directory.put(member("admins", "c")))
    assert (await directory.get("/groups/admins")).json() == ["a", "b", "c"]
    assert_no_content(await directory.delete(member("admins", "a")))
    assert_no_content(await directory.put(member("staff", "a")))
    assert await both_sides(directory) == {"admins": ["b", "c"], "staff": ["a"]}
    # The member list is replaced whole: single additions are not kept apart.
    assert (await directory.put("/groups/admins", json=["a"])).status_code == 200
    assert await both_sides(directory) == {"admins": ["a"], "staff": ["a"]}
    # From the user's side.
    record = {"first_name": "C", "last_name": "C", "groups": ["staff", "admins"]}
    assert (await directory.put("/users/c", json=record)).status_code == 200
    assert_no_content(await directory.delete(member("staff", "c")))
    assert (await directory.get("/users/c")).json()["groups"] == ["admins"]
    assert await both_sides(directory) == {"admins": ["a", "c"], "staff": ["a"]}
    page = (await directory.get("/users", params={"group": "admins"})).json()
    assert [item["userid"] for item in page["items"]] == ["a", "c"]


async def test_gone_users_and_groups_are_404(directory: httpx.AsyncClient) -> None:
    assert_no_content(await directory.put(member("staff", "a")))
    assert (await directory.delete("/users/a")).status_code == 204
    for method in ("PUT", "DELETE"):
        response = await directory.request(method, member("staff", "a"))
        assert_problem(response, 404, "user_not_found")
    assert (await directory.delete("/groups/admins")).status_code == 204
    for method in ("PUT", "DELETE"):
        response = await directory.request(method, member("admins", "b"))
        assert_problem(response, 404, "group_not_found")
    # Recreated, they start without the old memberships.
    await create_user(directory, "a")
    await create_group(directory, "admins")
    assert_problem(await directory.delete(member("staff", "a")), 404, "membership_not_found")
    assert_problem(await directory.delete(member("admins", "b")), 404, "membership_not_found")
    assert await both_sides(directory) == {"admins": [], "staff": []}
