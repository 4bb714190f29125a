"""An inactive user's stored memberships never reach the feed: every door, and a replay."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.auth import Actor, Role
from app.db import Database
from app.schemas import UserRecordIn
from app.service import bulk
from tests.events.feed import Directory, cursor, directory_of, kinds, read_all
from tests.support.helpers import create_group, create_user

pytestmark = pytest.mark.anyio

SCIM = {"Content-Type": "application/scim+json"}
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MERGE = {"Content-Type": "application/merge-patch+json"}


async def scim(client: httpx.AsyncClient, method: str, url: str, body: Any = None) -> Any:
    response = await client.request(method, f"/scim/v2{url}", json=body, headers=SCIM)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def set_active(client: httpx.AsyncClient, userid: str, active: bool) -> None:
    body = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": active}}]}
    await scim(client, "PATCH", f"/Users/{userid}", body)


async def ok(response: httpx.Response) -> None:
    assert response.status_code < 300, response.text


async def membership_events(client: httpx.AsyncClient, start: str) -> list[tuple[str, Any]]:
    events, _ = await read_all(client, start)
    return [kind for kind in kinds(events) if kind[0].startswith("membership.")]


async def test_no_door_emits_an_inactive_users_memberships(
    client: httpx.AsyncClient, database: Database
) -> None:
    for name in ("a", "b", "c"):
        await create_group(client, name)
    await create_user(client, "ann", ["a"])
    await create_user(client, "bob", ["a"])
    await set_active(client, "ann", False)
    start = await cursor(client)

    # Core API, group side: one member, the whole list, the group itself.
    await ok(await client.put("/groups/b/members/ann"))
    await ok(await client.delete("/groups/b/members/ann"))
    await ok(await client.put("/groups/b", json=["ann", "bob"]))
    await ok(await client.put("/groups/b", json=["bob"]))
    # Core API, user side: PUT and PATCH of the inactive user's groups.
    body = {"first_name": "Ann", "last_name": "Renamed", "groups": ["a", "b"]}
    await ok(await client.put("/users/ann", json=body))
    await ok(await client.patch("/users/ann", json={"groups": ["c"]}, headers=MERGE))
    # SCIM groups: create with the user, PATCH add and remove, PUT.
    group = {"schemas": [SCIM_GROUP], "displayName": "S", "members": [{"value": "ann"}]}
    created = await scim(client, "POST", "/Groups", group)
    url = f"/Groups/{created['id']}"
    remove = {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]}
    await scim(client, "PATCH", url, remove)
    add = {"op": "add", "path": "members", "value": [{"value": "ann"}, {"value": "bob"}]}
    await scim(client, "PATCH", url, {"schemas": [PATCH_OP], "Operations": [add]})
    await scim(client, "PUT", url, {"schemas": [SCIM_GROUP], "displayName": "S", "members": []})
    # The import, replacing the inactive user's record.
    imported = UserRecordIn(userid="ann", first_name="Ann", last_name="Imported", groups=["b"])
    rows = [bulk.ImportRow(1, imported)]
    async with database.writer() as session:
        await bulk.import_users(
            session, actor=Actor("importer", Role.admin), rows=rows, replace=True
        )
    body = {"first_name": "Ann", "last_name": "Imported", "groups": ["a", "c"]}
    await ok(await client.put("/users/ann", json=body))
    # Deleting a group that holds the inactive user (and an active one).
    await ok(await client.put("/groups/a/members/bob"))
    await ok(await client.delete("/groups/a"))

    assert await membership_events(client, start) == [
        ("membership.added", {"group": "b", "userid": "bob"}),
        ("membership.added", {"group": "s", "userid": "bob"}),
        ("membership.removed", {"group": "s", "userid": "bob"}),
        ("membership.removed", {"group": "a", "userid": "bob"}),
    ]
    events, _ = await read_all(client, start)
    updated = [e["data"] for e in events if e["type"] == "user.updated"]
    # The records in user.updated are as GET shows them: no groups.
    assert len(updated) == 2
    assert [data["groups"] for data in updated] == [[]] * len(updated)

    # Reactivation shows what is stored now, deactivation hides it again.
    start = await cursor(client)
    await set_active(client, "ann", True)
    await set_active(client, "ann", False)
    assert await membership_events(client, start) == [
        ("membership.added", {"group": "c", "userid": "ann"}),
        ("membership.removed", {"group": "c", "userid": "ann"}),
    ]

    # Deleting the inactive user: its stored memberships go unannounced.
    start = await cursor(client)
    await ok(await client.delete("/users/ann"))
    events, _ = await read_all(client, start)
    assert kinds(events) == [
        (
            "user.deleted",
            {"first_name": "Ann", "last_name": "Imported", "userid": "ann", "groups": []},
        )
    ]


async def test_replaying_the_feed_gives_the_directory(client: httpx.AsyncClient) -> None:
    start = await cursor(client)
    for name in ("x", "y", "z"):
        await create_group(client, name)
    await create_user(client, "ann", ["x", "y"])
    await create_user(client, "bob", ["x"])
    await create_user(client, "cy")
    await set_active(client, "ann", False)
    await set_active(client, "cy", False)
    # Writes while inactive, on every side.
    await ok(await client.put("/groups/z", json=["ann", "bob", "cy"]))
    await ok(await client.delete("/groups/x/members/ann"))
    await ok(await client.patch("/users/cy", json={"groups": ["x", "y"]}, headers=MERGE))
    await ok(await client.delete("/groups/y"))
    await set_active(client, "ann", True)
    await ok(await client.put("/groups/x/members/ann"))
    await set_active(client, "bob", False)
    await ok(await client.delete("/users/bob"))
    await create_group(client, "y", ["ann", "cy"])

    replayed = Directory()
    events, _ = await read_all(client, start)
    for event in events:
        replayed.apply(event)
    shown = await directory_of(client)
    assert replayed.users == shown.users
    assert replayed.groups == shown.groups
    assert replayed.memberships == shown.memberships
    # Not vacuous: cy's stored memberships (x, y, z) exist, hidden.
    assert shown.memberships == {("x", "ann"), ("z", "ann"), ("y", "ann")}
    response = await client.get("/users/cy")
    assert response.json()["groups"] == []
