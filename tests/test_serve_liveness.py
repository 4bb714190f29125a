"""Liveness of the real server: /healthz answers at once while searches scan.

A read that scans must not run on a worker's event loop (app.reads): if it
did, every other request of that worker, /healthz included, would wait for
it, and an orchestrator would restart a busy server as dead. Two workers
serve a directory large enough for a search that matches nothing to read
for a while; many such searches run at once, and /healthz, asked on new
connections meanwhile, must keep answering within a generous bound: the
loop's latency, not a measure of speed. SQLite only: there a statement runs
on a thread of the driver, which is what this pins; asyncpg never blocks
the loop.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from app.db import create_database
from app.migrations import upgrade
from app.settings import Settings
from tests.support.helpers import insert_many_users
from tests.support.live_server import async_url, serving

pytestmark = pytest.mark.anyio

USERS = 500_000
SEARCHERS = 16
PROBES = 20
# /healthz answers in a millisecond or two; a loop held by searches (each
# tens to hundreds of milliseconds, several queued) makes it wait seconds.
WITHIN = 1.0


async def _seeded(url: str) -> None:
    database = create_database(Settings(database_url=async_url(url)))
    try:
        await upgrade(database.engine)
        await insert_many_users(database, USERS)
    finally:
        await database.dispose()


async def test_healthz_answers_at_once_while_searches_scan(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'grouped-users.db'}"
    await _seeded(url)
    # Two characters: too few for the substring index, so each search scans.
    env = {"GROUPED_USERS_SEARCH_TIMEOUT_MS": "60000"}
    async with serving(url, tmp_path, workers=2, env=env) as server:
        stop, under_way = asyncio.Event(), asyncio.Event()
        searches: list[int] = []

        async def search(client: httpx.AsyncClient) -> None:
            while not stop.is_set():
                response = await client.get("/users", params={"q": "zq"})
                assert response.status_code == 200, response.text
                assert response.json()["items"] == []
                searches.append(response.status_code)
                if len(searches) >= SEARCHERS:
                    under_way.set()

        limits = httpx.Limits(max_connections=SEARCHERS)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            searchers = [asyncio.create_task(search(client)) for _ in range(SEARCHERS)]
            try:
                # Bounded: a searcher that fails never sets it (gather raises its error).
                await asyncio.wait_for(under_way.wait(), 60)
                waits = []
                for _ in range(PROBES):
                    # A new connection each time: either worker may take it.
                    async with httpx.AsyncClient(base_url=server.url, timeout=60) as probe:
                        started = time.monotonic()
                        response = await probe.get("/healthz")
                        waits.append(time.monotonic() - started)
                    assert response.status_code == 200, response.text
                    await asyncio.sleep(0.1)
            finally:
                stop.set()
                await asyncio.gather(*searchers)
    assert max(waits) < WITHIN, sorted(waits)
