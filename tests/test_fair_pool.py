"""The connection pool serves its waiters first come, first served, and loses no connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import Pool, StaticPool
from sqlalchemy.util.concurrency import greenlet_spawn
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty, QueueCommon

from app.db import create_database
from app.fair_pool import FairAsyncQueuePool, HandOffQueue
from app.settings import Settings

pytestmark = pytest.mark.anyio


def _engine(url: str, poolclass: type[Pool], *, timeout: float = 10.0) -> AsyncEngine:
    return create_async_engine(
        url, poolclass=poolclass, pool_size=1, max_overflow=0, pool_timeout=timeout
    )


@pytest.fixture
async def fair(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = _engine(postgres_url, FairAsyncQueuePool)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _waiting(queue: QueueCommon[str]) -> asyncio.Task[str]:
    """A task waiting on the queue, as a request waits for a connection."""
    waiter = asyncio.create_task(greenlet_spawn(queue.get, True, None))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    return waiter


@pytest.mark.parametrize(
    ("queue_class", "newcomer_gets_it"), [(HandOffQueue, False), (AsyncAdaptedQueue, True)]
)
async def test_a_returned_connection_goes_to_the_waiter_not_a_newcomer(
    queue_class: type[QueueCommon[str]], newcomer_gets_it: bool
) -> None:
    """SQLAlchemy's own queue (the second case) shows what the fair one is for."""
    queue = queue_class(maxsize=1)
    queue.put_nowait("connection")
    taken = queue.get_nowait()
    waiter = await _waiting(queue)
    queue.put_nowait(taken)  # returned; the waiter has not run yet
    try:
        newcomer = queue.get_nowait()
    except Empty:
        assert not newcomer_gets_it
        assert await waiter == "connection"
    else:
        assert newcomer_gets_it
        assert newcomer == "connection"
        waiter.cancel()


async def test_a_waiter_cancelled_as_the_connection_reaches_it_passes_it_on() -> None:
    queue: HandOffQueue[str] = HandOffQueue(maxsize=1)
    queue.put_nowait("connection")
    taken = queue.get_nowait()
    first = await _waiting(queue)
    second = await _waiting(queue)
    queue.put_nowait(taken)  # handed to the first waiter, which has not run yet
    first.cancel()
    assert await asyncio.wait_for(second, 5) == "connection"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert queue.empty()


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    queue: HandOffQueue[str] = HandOffQueue(maxsize=1)
    gone = await _waiting(queue)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    queue.put_nowait("connection")
    assert queue.get_nowait() == "connection"


async def test_waiters_are_served_in_the_order_they_came(fair: AsyncEngine) -> None:
    order: list[int] = []

    async def take(number: int) -> None:
        async with fair.connect() as connection:
            await connection.execute(text("SELECT 1"))
            order.append(number)

    async with fair.connect():
        tasks = []
        for number in range(5):
            tasks.append(asyncio.create_task(take(number)))
            await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_a_wait_past_the_timeout_fails_and_leaves_the_pool_whole(postgres_url: str) -> None:
    engine = _engine(postgres_url, FairAsyncQueuePool, timeout=0.1)
    try:
        async with engine.connect():
            with pytest.raises(PoolTimeout):
                async with engine.connect():
                    pass
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_the_service_uses_the_fair_pool(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/pool.db"
        if kind == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    database = create_database(Settings(database_url=url))
    try:
        assert isinstance(database.engine.pool, FairAsyncQueuePool)
    finally:
        await database.dispose()


async def test_an_in_memory_database_keeps_its_one_connection() -> None:
    database = create_database(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    try:
        assert isinstance(database.engine.pool, StaticPool)
    finally:
        await database.dispose()
