"""What the query modules share: rows, long IN lists, dialect differences."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, any_, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import Executable
from sqlalchemy.sql.type_api import TypeEngine

from app.fastread import FAST_READER, FastReader

# Statements here are bulk SQL: no ORM objects are loaded that the ORM would
# have to bring in line (it would otherwise fetch every deleted row back).
NO_SYNC: dict[str, Any] = {"synchronize_session": False}


def one_statement(session: AsyncSession) -> AbstractAsyncContextManager[object]:
    """The transaction around a read of a single statement.

    A single statement is atomic by itself. The fast reader (app.fastread)
    runs it in SQLite's autocommit mode; on PostgreSQL the session's
    connection is put in autocommit for it, which saves the BEGIN and
    COMMIT round trips (two of three) of a point lookup (#7).
    """
    if session.info.get(FAST_READER) is not None:
        return nullcontext()
    if dialect(session) == "postgresql":
        return _autocommit(session)
    return session.begin()


async def statement_rows(
    session: AsyncSession, statement: Executable, sqlite_sql: str, parameters: dict[str, Any]
) -> Sequence[Any]:
    """The rows of a single-statement read: on the fast reader (as `sqlite_sql`, the
    statement compiled once), else through the session."""
    fast: FastReader | None = session.info.get(FAST_READER)
    if fast is not None:
        return fast.rows(sqlite_sql, parameters)
    return (await session.execute(statement, parameters)).all()


@asynccontextmanager
async def _autocommit(session: AsyncSession) -> AsyncIterator[None]:
    async with session.begin():
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield


@dataclass(frozen=True)
class UserRow:
    id: int
    userid: str
    first_name: str
    last_name: str
    version: int


@dataclass(frozen=True)
class GroupRow:
    id: int
    name: str
    version: int


def dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def in_list(
    session: AsyncSession,
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    values: Collection[Any],
    type_: TypeEngine[Any],
) -> ColumnElement[bool]:
    """`column IN values` with one bound parameter, however long the list.

    An expanded IN list needs one parameter per value, and both drivers cap
    those at about 32,000: a group of 50,000 members would not fit.
    """
    if dialect(session) == "postgresql":
        return column == any_(literal(list(values), postgresql.ARRAY(type_)))
    each = func.json_each(literal(json.dumps(list(values)))).table_valued("value")
    return column.in_(select(each.c.value))


def insert_ignoring_duplicates(session: AsyncSession) -> Any:
    """The dialect's insert(), which can say ON CONFLICT DO NOTHING."""
    return postgresql.insert if dialect(session) == "postgresql" else sqlite.insert
