"""The prepared reader: PostgreSQL point lookups on asyncpg's prepared statements.

Through an AsyncSession a lookup costs a session transaction, a pool
checkout across the greenlet bridge, an autocommit switch and the result
machinery, each per request: more than the lookup itself on a loaded
machine. Here a point lookup is one call on a small asyncpg pool of this
process: the statement is compiled once (by SQLAlchemy, for asyncpg) and
asyncpg prepares it once per connection and keeps it, so each lookup is
one Bind/Execute round trip. Each runs in autocommit (no BEGIN, no COMMIT)
and sees what was committed when it starts, as a single statement does.

What runs here is single SELECTs only: no SET, LISTEN, cursor or
transaction is ever left on a connection, so it goes back to the pool as
it is, without asyncpg's reset query (another round trip per lookup).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.engine import make_url

from app.reads.fast import Converters, result_converters

# The key under which a reader session carries the PreparedReader (Session.info).
PREPARED_READER = "grouped_users_prepared_reader"

_DIALECT = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]


class CompiledRead:
    """A statement as asyncpg runs it: $n SQL, and the names of its parameters in order."""

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        preset = sorted(name for name, value in compiled.params.items() if value is not None)
        if preset:
            raise ValueError(f"parameters with values of their own would be lost: {preset}")
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.converters: Converters = result_converters(statement, _DIALECT)


async def _no_reset(_connection: asyncpg.Connection) -> None:
    """Nothing to undo: see the module's docstring."""


class PreparedReader:
    def __init__(self, database_url: str, *, size: int) -> None:
        # asyncpg takes the URL without SQLAlchemy's driver name.
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._size = size
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Task[asyncpg.Pool] | None = None
        # asyncpg's pool lets a newcomer take a connection returned for a
        # request already waiting (app.fair_pool); this semaphore, first come
        # first served, lets no more lookups at the pool than it has connections.
        self._turns = asyncio.Semaphore(size)
        # Called with (sql, parameters) before each statement; tests count them.
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []

    async def _open(self) -> asyncpg.Pool:
        # Opened on first use, on the loop of the worker that serves.
        return await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._size, reset=_no_reset
        )

    async def rows(self, read: CompiledRead, parameters: dict[str, Any]) -> Sequence[Any]:
        for listener in self.listeners:
            listener(read.sql, parameters)
        pool = self._pool
        if pool is None:
            if self._opening is None:
                self._opening = asyncio.ensure_future(self._open())
            pool = self._pool = await self._opening
        async with self._turns:
            rows = await pool.fetch(read.sql, *[parameters[name] for name in read.names])
        if read.converters is None:
            return [tuple(row) for row in rows]
        return [
            tuple(
                value if convert is None or value is None else convert(value)
                for convert, value in zip(read.converters, row, strict=True)
            )
            for row in rows
        ]

    async def close(self) -> None:
        if self._opening is not None and self._pool is None:
            self._pool = await self._opening
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._opening = None
