"""Concurrent requests on one database: unique keys decide, membership stays one fact.

Every test runs on SQLite and on PostgreSQL. The requests of a test are fired
at once with asyncio.gather over one ASGI app, so they race for the same rows.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.api import create_app
from app.db import Database, create_database
from app.settings import Settings
from tests.support.helpers import assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio

FAN_OUT = 30


@pytest.fixture
async def wide_database(database: Database, settings: Settings) -> AsyncIterator[Database]:
    """A Database with room for every request of a storm (`database` cleaned it up)."""
    wide = create_database(Settings(database_url=settings.database_url, db_pool_size=40))
    try:
        yield wide
    finally:
        await wide.dispose()


@pytest.fixture
async def wide(settings: Settings, wide_database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database=wide_database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


def _no_server_errors(responses: list[httpx.Response]) -> None:
    failures = [
        f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text}"
        for r in responses
        if r.status_code >= 500
    ]
    assert not failures, "\n".join(failures)


async def _memberships_from_groups(
    client: httpx.AsyncClient, groups: list[str]
) -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for group in groups:
        response = await client.get(f"/groups/{group}")
        if response.status_code == 404:
            # An existing group without members answers 404.
            assert_problem(response, 404, "group_not_found")
            continue
        assert response.status_code == 200, response.text
        members: list[str] = response.json()
        assert members == sorted(members)
        pairs |= {(userid, group) for userid in members}
    return pairs


async def _memberships_from_users(
    client: httpx.AsyncClient, userids: list[str]
) -> tuple[set[tuple[str, str]], set[str]]:
    """The (userid, group) pairs the users list, and the userids that are gone."""
    pairs: set[tuple[str, str]] = set()
    gone: set[str] = set()
    for userid in userids:
        response = await client.get(f"/users/{userid}")
        if response.status_code == 404:
            assert_problem(response, 404, "user_not_found")
            gone.add(userid)
            continue
        assert response.status_code == 200, response.text
        groups: list[str] = response.json()["groups"]
        assert groups == sorted(groups)
        pairs |= {(userid, group) for group in groups}
    return pairs, gone


async def _no_orphan_memberships(database: Database) -> None:
    async with database.engine.connect() as connection:
        orphans = await connection.scalar(
            text(
                "SELECT count(*) FROM memberships m"
                " LEFT JOIN users u ON u.id = m.user_id"
                " LEFT JOIN groups g ON g.id = m.group_id"
                " WHERE u.id IS NULL OR g.id IS NULL"
            )
        )
    assert orphans == 0


@pytest.mark.parametrize(
    ("resource", "code"), [("users", "user_exists"), ("groups", "group_exists")]
)
async def test_simultaneous_creations_of_one_name_have_one_winner(
    wide: httpx.AsyncClient, resource: str, code: str
) -> None:
    # The user names an existing group, so the race also covers its memberships.
    await create_group(wide, "staff")
    body: Any = (
        {"first_name": "Joe", "last_name": "Smith", "groups": ["staff"]}
        if resource == "users"
        else None
    )
    responses = await asyncio.gather(
        *(wide.post(f"/{resource}/contested", json=body) for _ in range(FAN_OUT))
    )

    _no_server_errors(responses)
    created = [r for r in responses if r.status_code == 201]
    assert len(created) == 1, [r.status_code for r in responses]
    assert created[0].headers["location"] == f"/{resource}/contested"
    for response in responses:
        if response.status_code != 201:
            assert_problem(response, 409, code)

    if resource == "users":
        record = (await wide.get("/users/contested")).json()
        assert record["groups"] == ["staff"]
        assert (await wide.get("/groups/staff")).json() == ["contested"]
    else:
        # It exists exactly once: another POST conflicts, a PUT works.
        assert_problem(await wide.post("/groups/contested"), 409, code)
        assert (await wide.put("/groups/contested", json=[])).status_code == 200


async def test_concurrent_member_list_rewrites_leave_one_of_them(
    wide: httpx.AsyncClient, wide_database: Database
) -> None:
    userids = [f"u{i:02d}" for i in range(12)]
    for userid in userids:
        await create_user(wide, userid)
    await create_group(wide, "g")
    rng = random.Random(20)
    lists: list[list[str]] = []
    while len(lists) < 20:
        candidate = rng.sample(userids, rng.randint(1, len(userids)))
        if sorted(candidate) not in [sorted(known) for known in lists]:
            lists.append(candidate)

    responses = await asyncio.gather(*(wide.put("/groups/g", json=members) for members in lists))

    _no_server_errors(responses)
    for members, response in zip(lists, responses, strict=True):
        assert response.status_code == 200, response.text
        assert response.json() == sorted(members)
    final = (await wide.get("/groups/g")).json()
    assert final in [sorted(members) for members in lists]
    from_users, gone = await _memberships_from_users(wide, userids)
    assert not gone
    assert from_users == {(userid, "g") for userid in final}
    await _no_orphan_memberships(wide_database)


async def test_mixed_storm_keeps_membership_consistent_from_both_sides(
    wide: httpx.AsyncClient, wide_database: Database
) -> None:
    userids = [f"s{i:02d}" for i in range(12)]
    doomed = set(userids[-3:])
    groups = ["g1", "g2"]
    for group in groups:
        await create_group(wide, group)
    for userid in userids:
        await create_user(wide, userid, groups=["g1"] if userid < "s06" else [])
    rng = random.Random(6)

    async def put_user(userid: str) -> tuple[str, httpx.Response]:
        body = {"first_name": "Storm", "last_name": userid, "groups": groups}
        return "put_user", await wide.put(f"/users/{userid}", json=body)

    async def put_group(group: str, members: list[str]) -> tuple[str, httpx.Response]:
        return "put_group", await wide.put(f"/groups/{group}", json=members)

    async def delete_user(userid: str) -> tuple[str, httpx.Response]:
        return "delete_user", await wide.delete(f"/users/{userid}")

    for _round in range(2):
        survivors = [userid for userid in userids if userid not in doomed]
        calls = [put_user(userid) for userid in userids]
        calls += [
            put_group(group, rng.sample(userids if i % 2 else survivors, rng.randint(0, 8)))
            for group in groups
            for i in range(8)
        ]
        if _round == 0:
            calls += [delete_user(userid) for userid in sorted(doomed)]
        rng.shuffle(calls)
        results = await asyncio.gather(*calls)

        _no_server_errors([response for _, response in results])
        for kind, response in results:
            if kind == "put_user" and response.status_code == 404:
                assert response.request.url.path.removeprefix("/users/") in doomed
                assert_problem(response, 404, "user_not_found")
            elif kind == "put_group" and response.status_code == 422:
                assert_problem(response, 422, "unknown_users")
            else:
                expected = {"put_user": 200, "put_group": 200, "delete_user": 204}[kind]
                assert response.status_code == expected, response.text

    from_groups = await _memberships_from_groups(wide, groups)
    from_users, gone = await _memberships_from_users(wide, userids)
    assert gone == doomed
    assert from_groups == from_users
    assert not {userid for userid, _ in from_groups} & doomed
    await _no_orphan_memberships(wide_database)
