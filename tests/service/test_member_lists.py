"""The one writer of member lists: what it reports and what it bumps, on both databases."""

from __future__ import annotations

import httpx
import pytest

from app.db import Database
from app.errors import UnknownUsers
from app.repository import groups as group_repo
from app.service.member_lists import lock_in_order, write_members
from tests.support.helpers import create_group, create_user

pytestmark = pytest.mark.anyio


async def _etag(client: httpx.AsyncClient, path: str) -> str:
    response = await client.get(path)
    assert response.status_code in (200, 404), response.text
    return str(response.headers.get("ETag", ""))


async def _group_id(database: Database, name: str) -> int:
    async with database.writer() as session, session.begin():
        group = await group_repo.lock(session, name=name)
        assert group is not None
        return group.id


async def test_the_writer_reports_who_was_added_and_removed(
    client: httpx.AsyncClient, database: Database
) -> None:
    for userid in ("ann", "bob", "cat", "dan"):
        await create_user(client, userid)
    await create_group(client, "team", ["ann", "bob", "cat"])
    group_id = await _group_id(database, "team")
    async with database.writer() as session, session.begin():
        await lock_in_order(session, groups=[group_id])
        change = await write_members(session, group_id=group_id, userids=["dan", "bob", "ann"])
    assert change.before == ["ann", "bob", "cat"]
    assert change.added == ["dan"]
    assert change.removed == ["cat"]
    assert change.after == ["ann", "bob", "dan"]
    assert (await client.get("/groups/team")).json() == ["ann", "bob", "dan"]


async def test_the_writer_bumps_the_group_and_only_the_users_it_moves(
    client: httpx.AsyncClient, database: Database
) -> None:
    for userid in ("ann", "bob", "cat"):
        await create_user(client, userid)
    await create_group(client, "team", ["ann", "bob"])
    paths = ["/groups/team", "/users/ann", "/users/bob", "/users/cat"]
    before = {path: await _etag(client, path) for path in paths}
    group_id = await _group_id(database, "team")
    async with database.writer() as session, session.begin():
        await write_members(session, group_id=group_id, userids=["ann", "cat"])
    after = {path: await _etag(client, path) for path in paths}
    changed = sorted(path for path in paths if after[path] != before[path])
    assert changed == ["/groups/team", "/users/bob", "/users/cat"]


async def test_unknown_users_write_nothing(client: httpx.AsyncClient, database: Database) -> None:
    await create_user(client, "ann")
    await create_group(client, "team", ["ann"])
    group_id = await _group_id(database, "team")
    with pytest.raises(UnknownUsers) as raised:
        async with database.writer() as session, session.begin():
            await write_members(session, group_id=group_id, userids=["ann", "zed", "yan"])
    assert raised.value.userids == ["yan", "zed"]
    assert (await client.get("/groups/team")).json() == ["ann"]


async def test_an_unchanged_list_reports_no_change(
    client: httpx.AsyncClient, database: Database
) -> None:
    await create_user(client, "ann")
    await create_group(client, "team", ["ann"])
    group_id = await _group_id(database, "team")
    async with database.writer() as session, session.begin():
        change = await write_members(session, group_id=group_id, userids=["ann"])
    assert (change.added, change.removed, change.after) == ([], [], ["ann"])


async def test_scim_and_the_api_write_member_lists_alike(client: httpx.AsyncClient) -> None:
    """A SCIM member change moves the same ETags as PUT /groups/{g}: one writer behind both."""
    for userid in ("ann", "bob", "cat"):
        await create_user(client, userid)
    created = await client.post(
        "/scim/v2/Groups",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Team",
            "members": [{"value": "ann"}, {"value": "bob"}],
        },
    )
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    paths = [f"/groups/{group_id}", "/users/ann", "/users/bob", "/users/cat"]
    before = {path: await _etag(client, path) for path in paths}
    patched = await client.patch(
        f"/scim/v2/Groups/{group_id}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "remove", "path": 'members[value eq "bob"]'},
                {"op": "add", "path": "members", "value": [{"value": "cat"}]},
            ],
        },
    )
    assert patched.status_code in (200, 204), patched.text
    after = {path: await _etag(client, path) for path in paths}
    assert sorted(path for path in paths if after[path] != before[path]) == [
        f"/groups/{group_id}",
        "/users/bob",
        "/users/cat",
    ]
    assert (await client.get(f"/groups/{group_id}")).json() == ["ann", "cat"]
