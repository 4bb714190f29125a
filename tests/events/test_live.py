"""The feed and webhooks across server processes: long-polls, kills and restarts, two senders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.events.feed import read_all
from tests.events.receiver import Receiver, receiving
from tests.support.live_server import (
    LiveServer,
    async_url,
    fresh_postgres_async,
    launch,
    postgres_server,
    terminate,
    wait_until_up,
)

pytestmark = pytest.mark.anyio

START_TIMEOUT = 120.0
HOOK_ENV = {
    "GROUPED_USERS_WEBHOOK_ALLOW_HTTP": "true",
    "GROUPED_USERS_WEBHOOK_ALLOW_PRIVATE": "true",
    "GROUPED_USERS_WEBHOOK_BACKOFF_SECONDS": "0.1",
    "GROUPED_USERS_WEBHOOK_BACKOFF_MAX_SECONDS": "0.5",
    "GROUPED_USERS_WEBHOOK_TIMEOUT_SECONDS": "3",
}


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield async_url(f"sqlite:///{tmp_path}/live.db")
        return
    async with fresh_postgres_async(postgres_server(), "grouped_users_events") as url:
        yield url


async def start(url: str, directory: Path, name: str) -> LiveServer:
    server = launch(url, directory, env=HOOK_ENV, name=name)
    try:
        await wait_until_up(server, within=START_TIMEOUT)
    except BaseException:
        server.kill()
        raise
    return server


async def register(base: str, receiver: Receiver) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await client.post("/webhooks", json={"url": receiver.url})
        assert response.status_code == 201, response.text
        receiver.secret = response.json()["secret"]


async def write(base: str, userids: list[str]) -> list[str]:
    """Create these users; the ids of all events in the feed afterwards."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for userid in userids:
            body = {"first_name": "A", "last_name": "B"}
            assert (await client.post(f"/users/{userid}", json=body)).status_code == 201
        events, _ = await read_all(client, None)
    return [event["id"] for event in events]


async def arrived(receiver: Receiver, expected: list[str], within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while not set(expected) <= set(receiver.ids()):
        missing = len(set(expected) - set(receiver.ids()))
        assert time.monotonic() < deadline, f"{missing} of {len(expected)} never arrived"
        await asyncio.sleep(0.1)


def first_seen(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


async def test_killed_mid_delivery_delivers_everything_after_restart(
    database_url: str, tmp_path: Path
) -> None:
    with receiving() as receiver:
        server = await start(database_url, tmp_path, "first")
        try:
            await register(server.url, receiver)
            # Slow: the kill comes while a POST is in flight, with more queued behind it.
            receiver.delay = 1.0
            expected = await write(server.url, [f"u{n}" for n in range(8)])
            deadline = time.monotonic() + 60
            while not receiver.ids():
                assert time.monotonic() < deadline, "nothing was delivered"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        finally:
            server.kill()
        assert len(first_seen(receiver.ids())) < len(expected)
        receiver.delay = 0.0
        server = await start(database_url, tmp_path, "second")
        try:
            await arrived(receiver, expected)
        finally:
            await terminate(server)
        ids = receiver.ids()
        assert receiver.bad_signatures == 0
        # Every event, in feed order; a repeat only of the one cut off by the kill.
        assert first_seen(ids) == expected
        assert len(ids) - len(expected) <= 1


async def test_two_processes_deliver_each_event_once(database_url: str, tmp_path: Path) -> None:
    with receiving() as receiver:
        one = await start(database_url, tmp_path, "one")
        try:
            two = await start(database_url, tmp_path, "two")
            try:
                await register(one.url, receiver)
                expected = await write(one.url, [f"a{n}" for n in range(15)])
                expected = await write(two.url, [f"b{n}" for n in range(15)])
                await arrived(receiver, expected)
                await asyncio.sleep(1.0)
            finally:
                await terminate(two)
        finally:
            await terminate(one)
    assert receiver.ids() == expected
    assert receiver.bad_signatures == 0


async def test_receiver_down_then_up(database_url: str, tmp_path: Path) -> None:
    with receiving() as receiver:
        server = await start(database_url, tmp_path, "server")
        try:
            await register(server.url, receiver)
            receiver.status = 503
            expected = await write(server.url, ["ann", "bob"])
            await asyncio.sleep(2.0)
            assert receiver.ids() == []
            receiver.status = 204
            await arrived(receiver, expected)
        finally:
            await terminate(server)
    assert receiver.ids() == expected


async def test_long_poll_hears_another_process_within_a_second(tmp_path: Path) -> None:
    async with fresh_postgres_async(postgres_server(), "grouped_users_events") as url:
        reader = await start(url, tmp_path, "reader")
        try:
            writer = await start(url, tmp_path, "writer")
            try:
                async with (
                    httpx.AsyncClient(base_url=reader.url, timeout=60) as consumer,
                    httpx.AsyncClient(base_url=writer.url, timeout=60) as other,
                ):
                    for attempt in range(3):
                        after = (await consumer.get("/events/cursor")).json()["cursor"]
                        waiting = asyncio.create_task(
                            consumer.get("/events", params={"after": after, "wait": 20})
                        )
                        await asyncio.sleep(1.0)
                        assert not waiting.done()
                        response = await other.post(f"/groups/g{attempt}")
                        assert response.status_code == 201
                        committed = time.monotonic()
                        page = (await waiting).json()
                        heard = time.monotonic() - committed
                        assert [e["data"]["name"] for e in page["items"]] == [f"g{attempt}"]
                        assert heard < 1.0, f"the event took {heard:.2f} s to reach the consumer"
            finally:
                await terminate(writer)
        finally:
            await terminate(reader)
