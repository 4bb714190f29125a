"""SingleRead: a read of one statement, compiled once per dialect, that owns its transaction."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import Select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.reads.fast import (
    FAST_READER,
    FastReader,
    TooLongForTheLoop,
    compile_sqlite,
    result_converters,
)
from app.reads.prepared import PREPARED_READER, CompiledRead, PreparedReader

# Session.info key of the one session all point lookups share (app.db): it
# can carry no transaction, since many requests use it at the same time.
SHARED_SESSION = "grouped_users_shared_session"
# Session.info key, on the shared session: the maker of a reader session of
# its own, for a point lookup too long for the loop (fast.TooLongForTheLoop).
OWN_READER = "grouped_users_own_reader"


class SharedSessionMisuse(RuntimeError):
    """A read that needs a transaction was given the shared point-lookup session."""


class StatementTimedOut(Exception):
    """The database stopped the statement at its time limit; the connection is fine."""


# PostgreSQL's query_canceled: what statement_timeout raises.
_QUERY_CANCELED = "57014"
# SQLite runs the progress handler every this many virtual machine steps
# (a fraction of a millisecond each): often enough to stop on time, rarely
# enough to cost nothing a search would notice.
_PROGRESS_STEPS = 10_000


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

    async def rows(
        self, session: AsyncSession, parameters: dict[str, Any], *, timeout_ms: int | None = None
    ) -> Sequence[Any]:
        """The statement's rows.

        `timeout_ms`: the database stops the statement after this long and
        StatementTimedOut is raised (reads that can scan; never a point one).
        """
        if self.point:
            fast: FastReader | None = session.info.get(FAST_READER)
            if fast is not None:
                try:
                    rows = fast.rows(self._sqlite_sql, parameters)
                except TooLongForTheLoop:
                    # A large answer (a huge group's members): the driver's
                    # thread builds it while the loop serves on.
                    if session.info.get(SHARED_SESSION):
                        async with session.info[OWN_READER]() as own:
                            return await self._through_driver(own, parameters)
                    return await self._through_driver(session, parameters)
                if self._converters is None:
                    return rows
                return [self._convert(row) for row in rows]
            prepared: PreparedReader | None = session.info.get(PREPARED_READER)
            if prepared is not None:
                return await prepared.rows(self._prepared, parameters)
        if session.info.get(SHARED_SESSION):
            raise SharedSessionMisuse("only point lookups may use the shared session")
        return await self._through_driver(session, parameters, timeout_ms=timeout_ms)

    async def _through_driver(
        self, session: AsyncSession, parameters: dict[str, Any], *, timeout_ms: int | None = None
    ) -> Sequence[Any]:
        dialect = session.get_bind().dialect.name
        statement = self._statements[dialect]
        if timeout_ms is not None:
            return await _bounded(session, statement, parameters, timeout_ms=timeout_ms)
        async with _one_statement(session):
            return (await session.execute(statement, parameters)).all()

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


async def _bounded(
    session: AsyncSession,
    statement: Select[*tuple[Any, ...]],
    parameters: dict[str, Any],
    *,
    timeout_ms: int,
) -> Sequence[Any]:
    """Run the statement in a transaction of its own, stopped by the database at the limit."""
    async with session.begin(), time_limit(session, timeout_ms=timeout_ms):
        return (await session.execute(statement, parameters)).all()


@asynccontextmanager
async def time_limit(session: AsyncSession, *, timeout_ms: int) -> AsyncIterator[None]:
    """Inside the session's transaction: the database stops its statements after `timeout_ms`.

    A statement that runs cannot be cancelled from the event loop (the
    request's time limit only abandons the await), so the database itself
    stops it: PostgreSQL by `SET LOCAL statement_timeout`, which ends with
    the transaction; SQLite by a progress handler on the connection, which
    interrupts a statement once the time (counted from here) is up and is
    removed before the connection goes back to the pool. StatementTimedOut
    is raised; the transaction rolls back and the connection serves the
    next request as usual.
    """
    try:
        if session.get_bind().dialect.name == "postgresql":
            # SET takes no bound parameters; an int is safe to write in.
            await session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
            yield
            return
        raw = await (await session.connection()).get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        deadline = time.monotonic() + timeout_ms / 1000

        def over_time() -> bool:
            return time.monotonic() > deadline

        await driver.set_progress_handler(over_time, _PROGRESS_STEPS)
        try:
            yield
        finally:
            # Queued on the connection's thread as soon as it is called, after
            # the statement: it runs even if this request is cancelled here.
            await driver.set_progress_handler(None, 0)
    except DBAPIError as exc:
        if _timed_out(exc):
            raise StatementTimedOut() from exc
        raise


def _timed_out(exc: DBAPIError) -> bool:
    if getattr(exc.orig, "sqlstate", None) == _QUERY_CANCELED:
        return True
    return getattr(exc.orig, "sqlite_errorname", None) == "SQLITE_INTERRUPT"
