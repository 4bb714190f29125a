"""What the query modules share: rows, long IN lists, dialect differences."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, any_, func, literal, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.type_api import TypeEngine

from app.fastread import FAST_READER, FastReader, compile_sqlite
from app.models import Membership

# Statements here are bulk SQL: no ORM objects are loaded that the ORM would
# have to bring in line (it would otherwise fetch every deleted row back).
NO_SYNC: dict[str, Any] = {"synchronize_session": False}


def escape_like(text: str) -> str:
    """`text` as a LIKE pattern that matches it literally (with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _one_statement(session: AsyncSession) -> AbstractAsyncContextManager[object]:
    """The transaction around a read of a single statement, which is atomic by itself.

    On PostgreSQL the session's connection is put in autocommit for it,
    which saves the BEGIN and COMMIT round trips (two of three) of a point
    lookup (#7).
    """
    if dialect(session) == "postgresql":
        return _autocommit(session)
    return session.begin()


class SingleRead:
    """A read of one statement, compiled once for each dialect.

    On the fast reader (app.fastread) it runs as SQLite SQL in autocommit
    mode, with no session transaction at all; elsewhere in a transaction of
    its own (_one_statement). The use case needs no `session.begin()` for
    it: a single statement is atomic by itself, and on the hot path every
    context manager and call counts (#7).
    """

    def __init__(self, build: Callable[[str], Select[*tuple[Any, ...]]]) -> None:
        self._statements = {name: build(name) for name in ("postgresql", "sqlite")}
        self._sqlite_sql = compile_sqlite(self._statements["sqlite"])

    async def rows(self, session: AsyncSession, parameters: dict[str, Any]) -> Sequence[Any]:
        fast: FastReader | None = session.info.get(FAST_READER)
        if fast is not None:
            return fast.rows(self._sqlite_sql, parameters)
        async with _one_statement(session):
            return (await session.execute(self._statements[dialect(session)], parameters)).all()


@asynccontextmanager
async def _autocommit(session: AsyncSession) -> AsyncIterator[None]:
    async with session.begin():
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield


def sorted_json_array(
    dialect_name: str,
    value: InstrumentedAttribute[str],
    on: ColumnElement[bool],
    where: ColumnElement[bool],
    outer: Any,
) -> ColumnElement[Any]:
    """`value` of every membership of the outer query's row, as a sorted JSON array.

    `value` is a column of the table memberships join to (`on`); `where`
    ties the memberships to the row of `outer`. The database builds the
    array itself (a group may have 100,000 members): no row, tuple or
    string is made per member here (#7). It is [] when there are none.
    PostgreSQL orders inside the aggregate; SQLite (without aggregate
    ORDER BY before 3.44) aggregates an ordered subquery, in that order.
    """
    if dialect_name == "postgresql":
        aggregated = (
            select(func.json_agg(aggregate_order_by(value, value)))
            .join_from(Membership, value.class_, on)
            .where(where)
            .scalar_subquery()
        )
        return func.coalesce(aggregated, literal_column("'[]'::json"))
    ordered = (
        select(value.label("value"))
        .join(Membership, on)
        .where(where)
        .order_by(value)
        .correlate(outer)
        .subquery()
    )
    return select(func.json_group_array(ordered.c.value)).scalar_subquery()


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
