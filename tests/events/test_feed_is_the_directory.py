"""The feed is the directory: replaying it rebuilds exactly what the API and export show.

`serve --workers 4` on PostgreSQL takes a concurrent mixed write load
(creates, renames, member adds and removes, group rewrites and deletes,
user deletes) over a small set of names, so that writers collide, while a
consumer follows the feed with `wait`. After each round the consumer's
replay, from an empty directory, must equal `grouped-users export` and
GET /groups, and no event id may have come twice. ROUNDS rounds of
SECONDS seconds each (the defaults are what the feature promises; the
environment can only raise them).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.events.feed import Directory, directory_of
from tests.support.live_server import (
    ROOT,
    fresh_postgres_async,
    launch,
    postgres_server,
    server_environment,
    terminate,
    wait_until_up,
)

pytestmark = pytest.mark.anyio

ROUNDS = max(5, int(os.environ.get("EVENTS_FEED_ROUNDS", "5")))
SECONDS = max(20.0, float(os.environ.get("EVENTS_FEED_SECONDS", "20")))
WRITERS = 12
START_TIMEOUT = 180.0
USERS = [f"u{n}" for n in range(40)]
GROUPS = [f"g{n}" for n in range(8)]


async def _write(client: httpx.AsyncClient, rng: random.Random) -> int:
    """One random change; the status it got (races make 404, 409 and 422 normal)."""
    user, group = rng.choice(USERS), rng.choice(GROUPS)
    kind = rng.random()
    names = {"first_name": f"F{rng.randrange(1000)}", "last_name": "L"}
    if kind < 0.2:
        body = names | {"groups": rng.sample(GROUPS, rng.randrange(3))}
        response = await client.post(f"/users/{user}", json=body)
    elif kind < 0.3:
        response = await client.patch(
            f"/users/{user}", json=names, headers={"Content-Type": "application/merge-patch+json"}
        )
    elif kind < 0.4:
        body = names | {"groups": rng.sample(GROUPS, rng.randrange(3))}
        response = await client.put(f"/users/{user}", json=body)
    elif kind < 0.55:
        response = await client.put(f"/groups/{group}/members/{user}")
    elif kind < 0.65:
        response = await client.delete(f"/groups/{group}/members/{user}")
    elif kind < 0.75:
        response = await client.post(f"/groups/{group}")
    elif kind < 0.83:
        response = await client.put(f"/groups/{group}", json=rng.sample(USERS, rng.randrange(8)))
    elif kind < 0.9:
        response = await client.delete(f"/groups/{group}")
    else:
        response = await client.delete(f"/users/{user}")
    assert response.status_code < 500, response.text
    return response.status_code


async def _writer(url: str, seed: int, until: float) -> int:
    rng = random.Random(seed)
    done = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while time.monotonic() < until:
            if await _write(client, rng) < 300:
                done += 1
    return done


class Consumer:
    def __init__(self) -> None:
        self.directory = Directory()
        self.ids: set[str] = set()
        self.cursor: str | None = None
        self.count = 0

    async def read(self, client: httpx.AsyncClient, wait: int) -> int:
        params: dict[str, Any] = {"limit": 1000, "wait": wait}
        if self.cursor is not None:
            params["after"] = self.cursor
        for attempt in range(3):
            try:
                response = await client.get("/events", params=params)
                break
            except httpx.RemoteProtocolError:
                # A kept-alive connection the server closed while we were
                # away (export, GET /groups): a GET with the same cursor is
                # safe to send again, as any consumer would.
                if attempt == 2:
                    raise
        assert response.status_code == 200, response.text
        page = response.json()
        for event in page["items"]:
            assert event["id"] not in self.ids, f"event {event['id']} came twice"
            self.ids.add(event["id"])
            self.directory.apply(event)
        self.count += len(page["items"])
        self.cursor = page["next_cursor"]
        return len(page["items"])

    async def follow(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.read(client, wait=2)

    async def drain(self, client: httpx.AsyncClient) -> None:
        while await self.read(client, wait=0):
            pass


def _exported(database_url: str) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "app", "export", "--format", "ndjson"],
        env=server_environment(database_url),
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    )
    records = [json.loads(line) for line in done.stdout.decode().splitlines() if line]
    return {record["userid"]: record for record in records}


async def test_replaying_the_feed_rebuilds_the_directory(tmp_path: Path) -> None:
    async with fresh_postgres_async(postgres_server(), "grouped_users_feed") as url:
        server = launch(url, tmp_path, workers=4)
        try:
            await wait_until_up(server, within=START_TIMEOUT, workers=4)
            consumer = Consumer()
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                for round_ in range(ROUNDS):
                    stop = asyncio.Event()
                    follower = asyncio.create_task(consumer.follow(client, stop))
                    until = time.monotonic() + SECONDS
                    writes = await asyncio.gather(
                        *(_writer(server.url, round_ * 100 + n, until) for n in range(WRITERS))
                    )
                    stop.set()
                    await follower
                    await consumer.drain(client)
                    assert sum(writes) > 0
                    shown = await directory_of(client)
                    replayed = consumer.directory
                    assert replayed.groups == shown.groups, f"round {round_}"
                    assert replayed.users == shown.users, f"round {round_}"
                    assert replayed.memberships == shown.memberships, f"round {round_}"
                    assert replayed.records() == await asyncio.to_thread(_exported, url)
                    print(
                        f"round {round_}: {sum(writes)} changes, {consumer.count} events so far,"
                        f" {len(shown.users)} users, {len(shown.memberships)} memberships"
                    )
        finally:
            await terminate(server)
