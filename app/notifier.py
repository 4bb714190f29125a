"""How a process learns that an event committed, for the long-polls of GET /events?wait=.

Commits in this process ring the bell directly (app.repository.events). On
PostgreSQL every writing transaction also NOTIFYs a channel, which one
connection per process LISTENs to; on SQLite, whose writers in other
processes announce nothing, waiting readers poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.repository.events import CHANNEL, Bell

log = logging.getLogger("grouped_users.events")

# Seconds between two reads of a waiting consumer when nothing rings.
SQLITE_POLL = 0.2
# With LISTEN, only a safety net (a notification lost with its connection).
LISTEN_POLL = 2.0
_RECONNECT = 1.0


class EventNotifier:
    def __init__(self, database_url: str) -> None:
        self.bell = Bell()
        self._url = database_url
        self._listening = make_url(database_url).get_backend_name() == "postgresql"
        self.poll = LISTEN_POLL if self._listening else SQLITE_POLL
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._listening:
            self._task = asyncio.create_task(self._listen(), name="event-listener")

    async def stop(self) -> None:
        self.bell.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _ring(self, *_: Any) -> None:
        self.bell.ring()

    async def _listen(self) -> None:
        # A connection of its own, outside the pool the requests share.
        engine = create_async_engine(self._url, poolclass=NullPool)
        try:
            while True:
                try:
                    async with engine.connect() as connection:
                        raw = await connection.get_raw_connection()
                        await self._listen_on(raw.driver_connection)
                except (OSError, DBAPIError) as exc:
                    log.warning("event listener: %s; reconnecting", exc)
                await asyncio.sleep(_RECONNECT)
        finally:
            await engine.dispose()

    async def _listen_on(self, driver: Any) -> None:
        """Until the connection is lost: asyncpg calls back on each NOTIFY."""
        lost = asyncio.Event()
        driver.add_termination_listener(lambda *_: lost.set())
        await driver.add_listener(CHANNEL, self._ring)
        # Anything committed while we were not listening.
        self.bell.ring()
        await lost.wait()
