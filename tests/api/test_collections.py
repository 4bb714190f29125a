"""GET /users and GET /groups: sorted, keyset-paginated collections."""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from app.db import Database
from app.models import Group, User
from tests.support.helpers import assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio

# Python's sorted() is byte order, which both databases must use too.
TRICKY = ["b", "a", "a.b", "a-b", "a_b", "a@b", "0x", "a0"]


async def seed_users(database: Database, rows: list[tuple[str, str, str]]) -> None:
    """(userid, first_name, last_name) straight into the table: fast, no memberships."""
    async with database.engine.begin() as connection:
        await connection.execute(
            insert(User),
            [
                {
                    "userid": userid,
                    "first_name": first,
                    "last_name": last,
                    "search_names": f"{first.casefold()}\n{last.casefold()}",
                    "version": 1,
                }
                for userid, first, last in rows
            ],
        )


async def seed_groups(database: Database, names: list[str]) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(insert(Group), [{"name": name, "version": 1} for name in names])


async def page(client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"items", "next_cursor"}
    cursor = body["next_cursor"]
    if cursor is not None:
        # Opaque: a URL-safe token that does not show the key it stands for.
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor), cursor
        assert body["items"], "a page with a next cursor has items"
        assert key_of(body["items"][-1]) not in cursor
    return body


def key_of(item: dict[str, Any]) -> str:
    key: str = item["userid"] if "userid" in item else item["name"]
    return key


async def walk(client: httpx.AsyncClient, path: str, limit: int, **params: Any) -> list[Any]:
    """Every item, following next_cursor; each page but the last is full."""
    items: list[Any] = []
    cursor: str | None = None
    while True:
        extra = {"cursor": cursor} if cursor is not None else {}
        body = await page(client, path, limit=limit, **params, **extra)
        assert len(body["items"]) <= limit
        got = keys(body["items"])
        # Strictly ascending across pages too: no repeat, and no endless walk.
        assert got == sorted(set(got)), got
        assert not items or not got or got[0] > key_of(items[-1]), got
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
        assert len(body["items"]) == limit, "only the last page may be short"


def keys(items: list[dict[str, Any]]) -> list[str]:
    return [key_of(item) for item in items]


def cursor_of(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/users", "/groups"])
async def test_empty_collection(client: httpx.AsyncClient, path: str) -> None:
    assert await page(client, path) == {"items": [], "next_cursor": None}


async def test_users_are_full_records_sorted_by_byte_order(client: httpx.AsyncClient) -> None:
    await create_group(client, "zeta")
    await create_group(client, "alpha")
    for userid in TRICKY:
        await create_user(client, userid, groups=["zeta", "alpha"] if userid < "a0" else None)
    for limit in (1, 3, 100):
        items = await walk(client, "/users", limit)
        assert keys(items) == sorted(TRICKY)
        for item in items:
            assert item == (await client.get(f"/users/{item['userid']}")).json()
            assert item["groups"] == (["alpha", "zeta"] if item["userid"] < "a0" else [])


async def test_groups_carry_member_counts_and_empty_groups_count_zero(
    client: httpx.AsyncClient,
) -> None:
    for userid in ("u1", "u2", "u3"):
        await create_user(client, userid)
    counts = {name: index % 4 for index, name in enumerate(TRICKY)}
    for name, count in counts.items():
        await create_group(client, name, ["u1", "u2", "u3"][:count])
    for limit in (1, 2, 1000):
        items = await walk(client, "/groups", limit)
        assert items == [{"name": name, "member_count": counts[name]} for name in sorted(TRICKY)]
    # Counts follow changes from either side.
    assert (await client.delete("/users/u1")).status_code == 204
    assert (await client.put("/groups/b", json=["u2", "u3"])).status_code == 200
    items = await walk(client, "/groups", 100)
    expected = {name: count - (count > 0) for name, count in counts.items()} | {"b": 2}
    assert {item["name"]: item["member_count"] for item in items} == expected


@pytest.mark.parametrize(
    ("limit", "size"), [(None, 100), ("1", 1), ("100", 100), ("1000", 1000)], ids=str
)
@pytest.mark.parametrize("path", ["/users", "/groups"])
async def test_limit_sets_the_page_size(
    client: httpx.AsyncClient, database: Database, path: str, limit: str | None, size: int
) -> None:
    names = [f"n{i:04d}" for i in range(1001)]
    if path == "/users":
        await seed_users(database, [(name, "N", name) for name in names])
    else:
        await seed_groups(database, names)
    params = {} if limit is None else {"limit": limit}
    first = await page(client, path, **params)
    assert keys(first["items"]) == names[:size]
    rest = await page(client, path, limit=1000, cursor=first["next_cursor"])
    assert keys(rest["items"]) == names[size:][:1000]


async def test_walk_2500_users_while_rows_come_and_go(
    client: httpx.AsyncClient, database: Database
) -> None:
    initial = [f"u{i:05d}" for i in range(0, 5000, 2)]
    await seed_users(database, [(userid, "Seed", userid) for userid in initial])
    expected = set(initial)  # what the walk must return: live when the cursor passed them
    behind: set[str] = set()  # inserted behind the cursor: never returned
    gone: set[str] = set()  # deleted ahead of the cursor: never returned

    async def insert_user(userid: str, ahead: bool) -> None:
        await create_user(client, userid)
        (expected if ahead else behind).add(userid)

    async def delete_user(userid: str, ahead: bool) -> None:
        assert (await client.delete(f"/users/{userid}")).status_code == 204
        if ahead:
            expected.discard(userid)
            gone.add(userid)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        body = await page(client, "/users", limit=100, **({"cursor": cursor} if cursor else {}))
        got = keys(body["items"])
        assert got == sorted(set(got)), got
        assert not seen or not got or got[0] > seen[-1], got
        seen += got
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(got) == 100
        last = got[-1]
        ahead = sorted(u for u in expected if u > last)
        if pages == 1:
            await insert_user("v0", ahead=True)  # after everything
            await insert_user("a0", ahead=False)  # before everything
        await insert_user(f"{last}a", ahead=True)  # the very next row
        await insert_user(f"{got[0]}b", ahead=False)
        await delete_user(ahead[0], ahead=True)  # the row that would have come next
        if len(ahead) > 150:
            await delete_user(ahead[150], ahead=True)
        await delete_user(got[1], ahead=False)  # seen already
        if pages % 3 == 0:
            await delete_user(last, ahead=False)  # the row the cursor points at
    assert len(seen) == len(set(seen)), "no row twice"
    assert seen == sorted(expected), "every row once, in order"
    assert not (behind | gone) & set(seen)
    assert f"{initial[99]}a" in seen
    assert len(seen) > 2400


FILTER_USERS = [
    (f"p{i:03d}", ["Zoë", "Max", "Åsa"][i % 3], ["Smith", "O'Neil", "Σίσυφος"][i % 5 % 3])
    for i in range(250)
]


def _first(name: str) -> Any:
    return lambda user: user[1] == name


# (params, which of FILTER_USERS match; members of "odd" are the odd-numbered ones)
FILTERS = [
    pytest.param({"group": "odd"}, lambda u: int(u[0][1:]) % 2 == 1, id="group"),
    pytest.param({"q": "ZOË"}, _first("Zoë"), id="q-upper-non-ascii"),
    pytest.param({"q": "zoë"}, _first("Zoë"), id="q-lower-non-ascii"),
    pytest.param({"q": "åSA"}, _first("Åsa"), id="q-mixed-case"),
    pytest.param({"q": "ΣΊΣΥΦΟΣ"}, lambda u: u[2] == "Σίσυφος", id="q-greek-last-name"),
    pytest.param({"q": "o'N"}, lambda u: u[2] == "O'Neil", id="q-quote"),
    pytest.param({"q": "P01"}, lambda u: u[0].startswith("p01"), id="q-userid"),
    pytest.param({"q": "1"}, lambda u: "1" in u[0], id="q-userid-digit"),
    pytest.param(
        {"group": "odd", "q": "zoë"},
        lambda u: int(u[0][1:]) % 2 == 1 and u[1] == "Zoë",
        id="group-and-q",
    ),
    pytest.param({"q": "nobody"}, lambda u: False, id="q-no-match"),
    pytest.param({"group": "empty"}, lambda u: False, id="group-without-members"),
    pytest.param({"group": "ghosts"}, lambda u: False, id="group-unknown"),
    pytest.param({"group": "ghosts", "q": "zoë"}, lambda u: False, id="group-unknown-and-q"),
]


@pytest.mark.parametrize(("params", "matches"), FILTERS)
async def test_filters_combine_with_pagination(
    client: httpx.AsyncClient, database: Database, params: dict[str, str], matches: Any
) -> None:
    await seed_users(database, FILTER_USERS)
    await create_group(client, "empty")
    await create_group(client, "even", [u for u, _, _ in FILTER_USERS[::2]])
    await create_group(client, "odd", [u for u, _, _ in FILTER_USERS[1::2]])
    wanted = [u for u in FILTER_USERS if matches(u)]
    items = await walk(client, "/users", 7, **params)
    assert keys(items) == [u for u, _, _ in wanted]
    for item, (userid, first, last) in zip(items, wanted, strict=True):
        # The whole record, with all its groups, not only the one filtered on.
        group = "odd" if int(userid[1:]) % 2 else "even"
        assert item == {"userid": userid, "first_name": first, "last_name": last, "groups": [group]}


# (q, the userids it must find) among users whose names hold LIKE's wildcards.
LITERAL_USERS = [
    ("a_b", "Plain", "User"),
    ("axb", "Plain", "User"),
    ("pct", "Full", "100%"),
    ("pcx", "Full", "100x"),
    ("bsl", "Back\\slash", "User"),
]


@pytest.mark.parametrize(
    ("q", "found"),
    [("_", ["a_b"]), ("a_b", ["a_b"]), ("%", ["pct"]), ("0%", ["pct"]), ("\\", ["bsl"])],
)
async def test_search_takes_wildcards_literally(
    client: httpx.AsyncClient, database: Database, q: str, found: list[str]
) -> None:
    await seed_users(database, LITERAL_USERS)
    assert keys(await walk(client, "/users", 1, q=q)) == found


async def test_search_through_records_written_over_http(client: httpx.AsyncClient) -> None:
    record = {"first_name": "Zoë", "last_name": "Ångström"}
    assert (await client.post("/users/zoe", json=record)).status_code == 201
    await create_user(client, "joe")
    assert keys(await walk(client, "/users", 10, q="ZOË")) == ["zoe"]
    assert keys(await walk(client, "/users", 10, q="ÅNGSTRÖM")) == ["zoe"]
    record = {"first_name": "Zoey", "last_name": "Smith"}
    assert (await client.put("/users/zoe", json=record)).status_code == 200
    assert keys(await walk(client, "/users", 10, q="ångström")) == []
    assert keys(await walk(client, "/users", 10, q="SMITH")) == ["zoe"]
    patch = {"first_name": "Ōtis"}
    assert (await client.patch("/users/zoe", json=patch)).status_code == 200
    assert keys(await walk(client, "/users", 10, q="ŌTIS")) == ["zoe"]
    assert keys(await walk(client, "/users", 10, q="zoey")) == []


BAD_CURSORS = [
    pytest.param("/users", "garbage!!", id="garbage"),
    pytest.param("/users", "", id="empty"),
    pytest.param("/users", "é", id="non-ascii"),
    pytest.param("/users", "%%%", id="percent"),
    pytest.param("/users", cursor_of("hello world"), id="base64-text"),
    pytest.param("/users", cursor_of(b"\xff\xfe\x00"), id="base64-binary"),
    pytest.param("/users", cursor_of("users:"), id="base64-no-key"),
    pytest.param("/users", cursor_of("users:Not A Name"), id="base64-bad-key"),
    pytest.param("/users", cursor_of("groups:a"), id="groups-cursor-on-users"),
    pytest.param("/groups", cursor_of("users:a"), id="users-cursor-on-groups"),
    pytest.param("/groups", "garbage!!", id="groups-garbage"),
]


@pytest.mark.parametrize(("path", "cursor"), BAD_CURSORS)
async def test_bad_cursor_is_422(client: httpx.AsyncClient, path: str, cursor: str) -> None:
    await create_user(client, "a")
    await create_group(client, "a")
    body = assert_problem(await client.get(path, params={"cursor": cursor}), 422, "invalid_cursor")
    assert [error["field"] for error in body["errors"]] == ["cursor"]


@pytest.mark.parametrize(("source", "target"), [("/groups", "/users"), ("/users", "/groups")])
async def test_a_cursor_given_out_by_one_list_is_refused_by_the_other(
    client: httpx.AsyncClient, source: str, target: str
) -> None:
    for name in ("a", "b", "c"):
        await create_user(client, name)
        await create_group(client, name)
    cursor = (await page(client, source, limit=1))["next_cursor"]
    assert cursor is not None
    assert keys((await page(client, source, limit=1, cursor=cursor))["items"]) == ["b"]
    assert_problem(await client.get(target, params={"cursor": cursor}), 422, "invalid_cursor")


@pytest.mark.parametrize("limit", ["0", "1001", "abc", "-1", "1.5", ""])
@pytest.mark.parametrize("path", ["/users", "/groups"])
async def test_bad_limit_is_422(client: httpx.AsyncClient, path: str, limit: str) -> None:
    body = assert_problem(await client.get(path, params={"limit": limit}), 422, "invalid_query")
    assert [error["field"] for error in body["errors"]] == ["limit"]


@pytest.mark.parametrize("q", ["x" * 257, "a\x00b", "a\nb"], ids=["257", "nul", "newline"])
async def test_bad_search_is_422(client: httpx.AsyncClient, q: str) -> None:
    body = assert_problem(await client.get("/users", params={"q": q}), 422, "invalid_query")
    assert [error["field"] for error in body["errors"]] == ["q"]
