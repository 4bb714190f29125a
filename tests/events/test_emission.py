"""Every door writes its events with its change, in its transaction, and only then."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from app.auth import Actor, Role
from app.db import Database
from app.schemas import UserRecordIn
from app.service import bulk
from tests.events.feed import cursor, kinds, read_all
from tests.support.helpers import create_group, create_user, insert_many_users

pytestmark = pytest.mark.anyio

SCIM = {"Content-Type": "application/scim+json"}
SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def record(userid: str, first: str, groups: list[str]) -> dict[str, Any]:
    return {"first_name": first, "last_name": "Tester", "userid": userid, "groups": groups}


async def since(client: httpx.AsyncClient, start: str) -> list[tuple[str, Any]]:
    events, _ = await read_all(client, start)
    return kinds(events)


async def test_core_api_user_changes(client: httpx.AsyncClient) -> None:
    await create_group(client, "admins")
    await create_group(client, "users")
    start = await cursor(client)
    await create_user(client, "ann", ["users", "admins"])
    assert await since(client, start) == [
        ("user.created", record("ann", "Ann", ["admins", "users"])),
        ("membership.added", {"group": "admins", "userid": "ann"}),
        ("membership.added", {"group": "users", "userid": "ann"}),
    ]

    start = await cursor(client)
    body = {"first_name": "Anne", "last_name": "Tester", "groups": ["users"]}
    assert (await client.put("/users/ann", json=body)).status_code == 200
    assert await since(client, start) == [
        ("membership.removed", {"group": "admins", "userid": "ann"}),
        ("user.updated", record("ann", "Anne", ["users"]) | {"changed": ["first_name"]}),
    ]

    # Groups alone: membership events, no user.updated.
    start = await cursor(client)
    patch = {"groups": ["admins"]}
    headers = {"Content-Type": "application/merge-patch+json"}
    assert (await client.patch("/users/ann", json=patch, headers=headers)).status_code == 200
    assert await since(client, start) == [
        ("membership.removed", {"group": "users", "userid": "ann"}),
        ("membership.added", {"group": "admins", "userid": "ann"}),
    ]

    # The same record again changes nothing and writes nothing.
    start = await cursor(client)
    body = {"first_name": "Anne", "last_name": "Tester", "groups": ["admins"]}
    assert (await client.put("/users/ann", json=body)).status_code == 200
    assert await since(client, start) == []

    # Deleting cascades: each membership removed, then the user.
    assert (await client.delete("/users/ann")).status_code == 204
    assert await since(client, start) == [
        ("membership.removed", {"group": "admins", "userid": "ann"}),
        ("user.deleted", record("ann", "Anne", ["admins"])),
    ]


async def test_core_api_group_changes(client: httpx.AsyncClient) -> None:
    for userid in ("ann", "bob", "cy"):
        await create_user(client, userid)
    start = await cursor(client)
    await create_group(client, "team", ["bob", "ann"])
    assert await since(client, start) == [
        ("group.created", {"name": "team"}),
        ("membership.added", {"group": "team", "userid": "ann"}),
        ("membership.added", {"group": "team", "userid": "bob"}),
    ]
    start = await cursor(client)
    assert (await client.put("/groups/team", json=["bob", "cy"])).status_code == 200
    assert (await client.put("/groups/team", json=["bob", "cy"])).status_code == 200
    assert (await client.put("/groups/team/members/ann")).status_code in (200, 204)
    assert (await client.put("/groups/team/members/ann")).status_code in (200, 204)
    assert (await client.delete("/groups/team/members/bob")).status_code == 204
    assert await since(client, start) == [
        ("membership.removed", {"group": "team", "userid": "ann"}),
        ("membership.added", {"group": "team", "userid": "cy"}),
        ("membership.added", {"group": "team", "userid": "ann"}),
        ("membership.removed", {"group": "team", "userid": "bob"}),
    ]
    start = await cursor(client)
    assert (await client.delete("/groups/team")).status_code == 204
    assert await since(client, start) == [
        ("membership.removed", {"group": "team", "userid": "ann"}),
        ("membership.removed", {"group": "team", "userid": "cy"}),
        ("group.deleted", {"name": "team"}),
    ]


async def test_refused_changes_write_no_events(client: httpx.AsyncClient) -> None:
    await create_group(client, "team")
    await create_user(client, "ann", ["team"])
    start = await cursor(client)
    body = {"first_name": "Ann", "last_name": "X", "groups": ["team", "nope"]}
    assert (await client.post("/users/bob", json=body)).status_code == 422
    assert (await client.put("/users/ann", json=body)).status_code == 422
    assert (await client.put("/groups/team", json=["ann", "ghost"])).status_code == 422
    stale = {"If-Match": '"1.999"'}
    body = {"first_name": "Ann", "last_name": "X"}
    assert (await client.put("/users/ann", json=body, headers=stale)).status_code == 412
    assert (await client.delete("/groups/team", headers=stale)).status_code == 412
    assert (await client.post("/users/ann", json=body)).status_code == 409
    assert (await client.post("/groups/team")).status_code == 409
    assert (await client.delete("/groups/team/members/bob")).status_code == 404
    assert await since(client, start) == []


async def scim(client: httpx.AsyncClient, method: str, url: str, body: Any = None) -> Any:
    response = await client.request(method, f"/scim/v2{url}", json=body, headers=SCIM)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def test_scim_changes(client: httpx.AsyncClient) -> None:
    start = await cursor(client)
    name = {"givenName": "Ann", "familyName": "Doe"}
    await scim(client, "POST", "/Users", {"schemas": [SCIM_USER], "userName": "ann", "name": name})
    group = {"schemas": [SCIM_GROUP], "displayName": "Sales", "members": [{"value": "ann"}]}
    created = await scim(client, "POST", "/Groups", group)
    off = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    await scim(client, "PATCH", "/Users/ann", off)
    empty = {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]}
    await scim(client, "PATCH", f"/Groups/{created['id']}", empty)
    await scim(client, "DELETE", f"/Groups/{created['id']}")
    await scim(client, "DELETE", "/Users/ann")
    ann = {"first_name": "Ann", "last_name": "Doe", "userid": "ann"}
    assert await since(client, start) == [
        ("user.created", ann | {"groups": []}),
        ("group.created", {"name": "sales", "display_name": "Sales"}),
        ("membership.added", {"group": "sales", "userid": "ann"}),
        # Deactivation hides the membership from the core API, and so from the feed.
        ("membership.removed", {"group": "sales", "userid": "ann"}),
        ("user.updated", ann | {"groups": [], "changed": ["active"]}),
        # The stored membership goes too, unannounced: it was hidden already.
        ("group.deleted", {"name": "sales"}),
        ("user.deleted", ann | {"groups": []}),
    ]


async def test_import(client: httpx.AsyncClient, database: Database) -> None:
    await create_group(client, "old")
    await create_user(client, "ann", ["old"])
    start = await cursor(client)
    rows = [
        bulk.ImportRow(1, UserRecordIn(userid="ann", first_name="Ann", last_name="New")),
        bulk.ImportRow(
            2, UserRecordIn(userid="bob", first_name="Bob", last_name="B", groups=["new", "old"])
        ),
    ]
    actor = Actor("importer", Role.admin)
    async with database.writer() as session:
        await bulk.import_users(session, actor=actor, rows=rows, create_groups=True, replace=True)
    events, _ = await read_all(client, start)
    assert {event["actor"] for event in events} == {"importer"}
    assert kinds(events) == [
        ("group.created", {"name": "new"}),
        ("membership.removed", {"group": "old", "userid": "ann"}),
        (
            "user.updated",
            {
                "first_name": "Ann",
                "last_name": "New",
                "userid": "ann",
                "groups": [],
                "changed": ["last_name"],
            },
        ),
        (
            "user.created",
            {"first_name": "Bob", "last_name": "B", "userid": "bob", "groups": ["new", "old"]},
        ),
        ("membership.added", {"group": "new", "userid": "bob"}),
        ("membership.added", {"group": "old", "userid": "bob"}),
    ]
    # A refused import writes nothing.
    start = await cursor(client)
    bad = [
        bulk.ImportRow(1, UserRecordIn(userid="cy", first_name="C", last_name="C", groups=["zz"]))
    ]
    async with database.writer() as session:
        with pytest.raises(bulk.ImportRefused):
            await bulk.import_users(session, actor=actor, rows=bad)
    assert await since(client, start) == []


async def test_a_large_change_writes_its_events_off_the_event_loop(
    client: httpx.AsyncClient, database: Database
) -> None:
    # On SQLite the batch of the group commit writes its turns' events in
    # COMMIT's thread, so the events of one large change never hold the
    # event loop. PostgreSQL writes them with the audit entry in the one
    # statement at commit, its rows one JSON parameter (app.repository.events).
    await insert_many_users(database, 2500)
    await create_group(client, "everyone")
    start = await cursor(client)
    inserts: list[tuple[int, bool]] = []
    loop_thread = threading.get_ident()

    def record_insert(_conn: Any, _cursor: Any, statement: str, rows: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
            count = len(rows) if isinstance(rows, list) else 1
            inserts.append((count, threading.get_ident() == loop_thread))

    members = [f"u{number}" for number in range(1, 2501)]
    # SQLite's writes run on the group committer's engine (app.group_commit).
    engine = (
        database.engine.sync_engine if database.committer is None else database.committer.engine
    )
    event.listen(engine, "before_cursor_execute", record_insert)
    try:
        response = await client.put("/groups/everyone", json=members)
    finally:
        event.remove(engine, "before_cursor_execute", record_insert)
    assert response.status_code == 200, response.text
    assert inserts == ([(2500, False)] if database.dialect == "sqlite" else [])
    # One event per member, in order, all in the feed.
    written, _ = await read_all(client, start)
    assert kinds(written) == [
        ("membership.added", {"group": "everyone", "userid": userid}) for userid in sorted(members)
    ]
