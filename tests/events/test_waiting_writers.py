"""A writer that waited for a user's lock sees what the writer it waited for committed.

PostgreSQL runs READ COMMITTED: a statement sees what committed before it
began, and one that waited for a row lock re-reads only the locked row. So
the memberships of a user must be read by a statement that starts once its
lock is held, or a membership committed during the wait goes unannounced:
a feed consumer would keep it after the user (or the membership) is gone.
SQLite lets one writer in at a time: nothing to wait for inside a statement.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import text

from app import bulkfiles
from app.auth import Actor, Role
from app.db import Database
from app.service import bulk
from tests.events.feed import cursor, kinds, read_all
from tests.support.helpers import create_group, create_user

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("settings", ["postgresql"], indirect=True)]

# Adding a membership as PUT /groups/late/members/ann does: the group, then
# the user locked against other writers, until this transaction ends.
_JOIN_LATE = (
    text("SELECT id FROM groups WHERE name = 'late' FOR NO KEY UPDATE"),
    text("SELECT id FROM users WHERE userid = 'ann' FOR NO KEY UPDATE"),
    text(
        "INSERT INTO memberships (group_id, user_id)"
        " SELECT g.id, u.id FROM groups g, users u WHERE g.name = 'late' AND u.userid = 'ann'"
    ),
)
# A backend that waits for `holder`, which holds the user's row (and the
# group's): the request, waiting for a lock the holder has. A writer that
# locks the user by key is first in line on the row's tuple lock; one that
# locks a set of users by id waits on the holder's transaction.
_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND CAST(:holder AS integer) = ANY(pg_blocking_pids(pid))"
)
T = TypeVar("T")
# Not a measure of speed: how long a stuck test waits before it says so.
_PATIENCE = 30.0


async def _until_a_writer_waits_for_the_user(
    database: Database, holder: int, answer: asyncio.Future[Any]
) -> None:
    deadline = time.monotonic() + _PATIENCE
    async with database.engine.connect() as watcher:
        while (await watcher.execute(_WAITING, {"holder": holder})).scalar_one() == 0:
            # pg_stat_activity is read once per transaction: a new one for each look.
            await watcher.rollback()
            if answer.done():
                # Its answer (or error) says why it did not wait.
                pytest.fail(f"the request ended without waiting: {answer.result()!r}")
            assert time.monotonic() < deadline, "the request never waited for the user's lock"
            await asyncio.sleep(0.02)


async def _while_a_membership_commits(database: Database, request: Callable[[], Awaitable[T]]) -> T:
    """Run the request while another transaction adds ann to "late", and commit
    that transaction only once the request is waiting for ann's lock."""
    async with database.engine.connect() as other:
        transaction = await other.begin()
        holder = (await other.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        for statement in _JOIN_LATE:
            await other.execute(statement)
        answer = asyncio.ensure_future(request())
        try:
            await _until_a_writer_waits_for_the_user(database, holder, answer)
        finally:
            await transaction.commit()
        return await answer


async def _setup(client: httpx.AsyncClient) -> tuple[str, str]:
    await create_user(client, "bob")
    await create_group(client, "early")
    # bob keeps "late" non-empty, so that GET shows it (and its ETag) throughout.
    await create_group(client, "late", ["bob"])
    await create_user(client, "ann", ["early"])
    late = (await client.get("/groups/late")).headers["ETag"]
    return await cursor(client), late


def _record(groups: list[str]) -> dict[str, Any]:
    return {"first_name": "Ann", "last_name": "Tester", "userid": "ann", "groups": groups}


async def test_a_deletion_announces_a_membership_committed_while_it_waited(
    client: httpx.AsyncClient, database: Database
) -> None:
    start, late = await _setup(client)
    response = await _while_a_membership_commits(database, lambda: client.delete("/users/ann"))
    assert response.status_code == 204, response.text
    events, _ = await read_all(client, start)
    assert kinds(events) == [
        ("membership.removed", {"group": "early", "userid": "ann"}),
        ("membership.removed", {"group": "late", "userid": "ann"}),
        ("user.deleted", _record(["early", "late"])),
    ]
    entry = (await client.get("/audit", params={"limit": 1})).json()["items"][0]
    assert (entry["action"], entry["before"]) == ("user.delete", _record(["early", "late"]))
    # The group it left changed: its member list and its version.
    assert (await client.get("/groups/late")).json() == ["bob"]
    assert (await client.get("/groups/late")).headers["ETag"] != late


async def test_a_change_of_groups_sees_a_membership_committed_while_it_waited(
    client: httpx.AsyncClient, database: Database
) -> None:
    start, late = await _setup(client)
    response = await _while_a_membership_commits(
        database,
        lambda: client.patch(
            "/users/ann",
            json={"groups": ["early"]},
            headers={"Content-Type": "application/merge-patch+json"},
        ),
    )
    assert response.status_code == 200, response.text
    assert response.json()["groups"] == ["early"]
    events, _ = await read_all(client, start)
    assert kinds(events) == [("membership.removed", {"group": "late", "userid": "ann"})]
    entry = (await client.get("/audit", params={"limit": 1})).json()["items"][0]
    assert entry["before"] == _record(["early", "late"])
    assert (await client.get("/groups/late")).json() == ["bob"]
    assert (await client.get("/groups/late")).headers["ETag"] != late


async def test_a_replacing_import_sees_a_membership_committed_while_it_waited(
    client: httpx.AsyncClient, database: Database
) -> None:
    start, late = await _setup(client)
    record = _record(["early"]) | {"first_name": "Annie"}
    rows = bulkfiles.read_rows(io.BytesIO(json.dumps(record).encode() + b"\n"), "ndjson")

    async def replace() -> bulk.ImportResult:
        async with database.writer() as session:
            return await bulk.import_users(
                session, actor=Actor("tests", Role.admin), rows=rows, replace=True
            )

    result = await _while_a_membership_commits(database, replace)
    assert (result.created, result.replaced) == (0, 1)
    events, _ = await read_all(client, start)
    assert ("membership.removed", {"group": "late", "userid": "ann"}) in kinds(events)
    assert ("membership.removed", {"group": "early", "userid": "ann"}) not in kinds(events)
    assert (await client.get("/users/ann")).json() == record
    assert (await client.get("/groups/late")).json() == ["bob"]
    assert (await client.get("/groups/late")).headers["ETag"] != late
