"""SingleRead: a read of one statement, compiled once per dialect, that owns its transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.reads.fast import FAST_READER, FastReader, compile_sqlite, result_converters
from app.reads.prepared import PREPARED_READER, CompiledRead, PreparedReader

# Session.info key of the one session all point lookups share (app.db): it
# can carry no transaction, since many requests use it at the same time.
SHARED_SESSION = "grouped_users_shared_session"


class SharedSessionMisuse(RuntimeError):
    """A read that needs a transaction was given the shared point-lookup session."""


class SingleRead:
    """A read of one statement, compiled once for each dialect.

    `point`: an indexed lookup of at most a few rows, which on SQLite runs
    on the fast reader (app.reads.fast) in autocommit mode, on the event
    loop's thread, and on PostgreSQL on the prepared reader
    (app.reads.prepared: asyncpg's prepared statements, autocommit). Any
    other read runs in a transaction of its own through the driver. The caller opens no
    transaction: a single statement is atomic by itself, and on the hot
    path every context manager and call counts.
    """

    def __init__(self, build: Callable[[str], Select[*tuple[Any, ...]]], *, point: bool) -> None:
        self.point = point
        self._statements = {name: build(name) for name in ("postgresql", "sqlite")}
        self._sqlite_sql = compile_sqlite(self._statements["sqlite"])
        self._converters = result_converters(self._statements["sqlite"])
        self._prepared = CompiledRead(self._statements["postgresql"])

    async def rows(self, session: AsyncSession, parameters: dict[str, Any]) -> Sequence[Any]:
        if self.point:
            fast: FastReader | None = session.info.get(FAST_READER)
            if fast is not None:
                rows = fast.rows(self._sqlite_sql, parameters)
                if self._converters is None:
                    return rows
                return [self._convert(row) for row in rows]
            prepared: PreparedReader | None = session.info.get(PREPARED_READER)
            if prepared is not None:
                return await prepared.rows(self._prepared, parameters)
        if session.info.get(SHARED_SESSION):
            raise SharedSessionMisuse("only point lookups may use the shared session")
        async with _one_statement(session):
            dialect = session.get_bind().dialect.name
            return (await session.execute(self._statements[dialect], parameters)).all()

    def _convert(self, row: Sequence[Any]) -> tuple[Any, ...]:
        assert self._converters is not None
        return tuple(
            value if convert is None or value is None else convert(value)
            for convert, value in zip(self._converters, row, strict=True)
        )


def _one_statement(session: AsyncSession) -> AbstractAsyncContextManager[object]:
    """The transaction around a read of a single statement.

    On PostgreSQL the session's connection is put in autocommit for it,
    which saves the BEGIN and COMMIT round trips (two of three) of a point
    lookup.
    """
    if session.get_bind().dialect.name == "postgresql":
        return _autocommit(session)
    return session.begin()


@asynccontextmanager
async def _autocommit(session: AsyncSession) -> AsyncIterator[None]:
    async with session.begin():
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield
