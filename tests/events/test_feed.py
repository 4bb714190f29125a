"""GET /events: pages in commit order, cursors that never go null, types, expiry, long-polls."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from app.clock import now
from app.db import Database
from app.models import Event
from app.repository import events as event_repo
from app.service import events
from tests.events.feed import cursor, read_all
from tests.support.helpers import assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio


async def test_pages_follow_the_feed_and_the_cursor_never_goes_null(
    client: httpx.AsyncClient,
) -> None:
    start = await cursor(client)
    await create_group(client, "team")
    for userid in ("ann", "bob", "cy"):
        await create_user(client, userid, ["team"])
    everything, end = await read_all(client, None)
    assert [e["type"] for e in everything][:3] == [
        "group.created",
        "user.created",
        "membership.added",
    ]
    assert len(everything) == 7
    assert len({e["id"] for e in everything}) == 7
    for event in everything:
        assert event["actor"] == "anonymous"
        assert event["occurred_at"].endswith(("Z", "+00:00"))
        assert set(event) == {"id", "type", "occurred_at", "actor", "request_id", "data"}

    # Pages of two, from the cursor of before the changes: the same events.
    seen, after = [], start
    while True:
        page = (await client.get("/events", params={"after": after, "limit": 2})).json()
        assert page["next_cursor"]
        if not page["items"]:
            assert page["next_cursor"] == after
            break
        assert len(page["items"]) <= 2
        seen += page["items"]
        after = page["next_cursor"]
    assert seen == everything
    assert after == end == await cursor(client)


async def test_request_id_and_types(client: httpx.AsyncClient) -> None:
    start = await cursor(client)
    await create_group(client, "team")
    response = await client.post(
        "/users/ann",
        json={"first_name": "Ann", "last_name": "T", "groups": ["team"]},
        headers={"X-Request-ID": "req-42"},
    )
    assert response.status_code == 201
    page = (
        await client.get(
            "/events", params={"after": start, "types": "membership.added,user.created"}
        )
    ).json()
    assert [(e["type"], e["request_id"]) for e in page["items"]] == [
        ("user.created", "req-42"),
        ("membership.added", "req-42"),
    ]
    # A filtered page that comes short moves on to the end of the feed.
    assert page["next_cursor"] == await cursor(client)
    assert_problem(
        await client.get("/events", params={"types": "user.exploded"}), 422, "invalid_cursor"
    )


@pytest.mark.parametrize("bad", ["nope", "ZXZlbnRzOjk5OTk5", "dXNlcnM6YW5u"])
async def test_bad_cursors_are_422(client: httpx.AsyncClient, bad: str) -> None:
    # Garbage, a position beyond the feed, a cursor of another list.
    assert_problem(await client.get("/events", params={"after": bad}), 422, "invalid_cursor")


async def test_bad_parameters_are_422(client: httpx.AsyncClient) -> None:
    for params in ({"limit": "0"}, {"limit": "1001"}, {"wait": "31"}, {"wait": "-1"}):
        assert_problem(await client.get("/events", params=params), 422, "invalid_query")


async def test_expired_cursor_is_410_with_where_to_go_on(
    client: httpx.AsyncClient, database: Database
) -> None:
    old = await cursor(client)
    await create_group(client, "team")
    await create_user(client, "ann", ["team"])
    async with database.writer() as session:
        assert await events.purge(session, retention=timedelta(0)) == 3
    body = assert_problem(await client.get("/events", params={"after": old}), 410, "cursor_expired")
    now = await cursor(client)
    assert body["cursor"] == now
    # From the oldest kept, or from now: nothing, and no error.
    assert (await client.get("/events")).json() == {"items": [], "next_cursor": now}
    await create_user(client, "bob")
    items, _ = await read_all(client, body["cursor"])
    assert [e["type"] for e in items] == ["user.created"]


# A purge goes on `batch` positions at a time: in one batch, several, or one by one.
@pytest.mark.parametrize("batch", [1, 3, 10_000])
async def test_purge_keeps_everything_from_the_first_event_to_keep(
    client: httpx.AsyncClient, database: Database, batch: int
) -> None:
    """Times follow positions only nearly (processes' clocks, moments apart): the first kept bounds.

    Events before the first one within the retention go; it and every one
    after it stay, even one older than the retention.
    """
    old = await cursor(client)
    for name in ("a", "b", "c", "d"):
        await create_group(client, name)
    async with database.engine.begin() as connection:
        positions = (
            await connection.scalars(select(Event.position).order_by(Event.position))
        ).all()
        days_ago = [3, 2, 0, 2]
        for position, days in zip(positions, days_ago, strict=True):
            await connection.execute(
                update(Event)
                .where(Event.position == position)
                .values(occurred_at=now() - timedelta(days=days))
            )
    async with database.writer() as session:
        assert await events.purge(session, retention=timedelta(days=1), batch=batch) == 2
    body = assert_problem(await client.get("/events", params={"after": old}), 410, "cursor_expired")
    items, _ = await read_all(client, None)
    assert [e["data"]["name"] for e in items] == ["c", "d"]
    assert body["cursor"] == await cursor(client)
    async with database.writer() as session:
        assert await events.purge(session, retention=timedelta(days=1), batch=batch) == 0


async def test_purge_deletes_what_a_stopped_purge_left_below_its_horizon(
    client: httpx.AsyncClient, database: Database
) -> None:
    """A purge that moved the horizon and stopped before its deletes: the next one deletes them."""
    for name in ("a", "b"):
        await create_group(client, name)
    async with database.writer() as session, session.begin():
        last = (await event_repo.counter(session)).position
        await event_repo.mark_purged(session, through=last)
    async with database.writer() as session:
        assert await events.purge(session, retention=timedelta(days=1)) == 2
    async with database.engine.connect() as connection:
        assert (await connection.scalars(select(Event.position))).all() == []


async def test_wait_answers_as_soon_as_an_event_commits(client: httpx.AsyncClient) -> None:
    start = await cursor(client)

    async def later() -> None:
        await asyncio.sleep(0.5)
        await create_group(client, "late")

    began = time.monotonic()
    writer = asyncio.create_task(later())
    response = await client.get("/events", params={"after": start, "wait": 20})
    await writer
    assert response.status_code == 200
    assert [e["data"] for e in response.json()["items"]] == [{"name": "late"}]
    assert time.monotonic() - began < 10


async def test_wait_with_nothing_new_gives_the_same_cursor(client: httpx.AsyncClient) -> None:
    start = await cursor(client)
    response = await client.get("/events", params={"after": start, "wait": 1})
    assert response.json() == {"items": [], "next_cursor": start}
