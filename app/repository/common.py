"""What the query modules share: rows, long IN lists, dialect differences."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import BigInteger, ColumnElement, String, any_, bindparam, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql import Executable
from sqlalchemy.sql.type_api import TypeEngine

T = TypeVar("T")
S = TypeVar("S")

# Statements here are bulk SQL: no ORM objects are loaded that the ORM would
# have to bring in line (it would otherwise fetch every deleted row back).
NO_SYNC: dict[str, Any] = {"synchronize_session": False}


@dataclass(frozen=True)
class UserRow:
    id: int
    userid: str
    first_name: str
    last_name: str
    version: int
    # SCIM's active: False hides the user's memberships from the core API.
    active: bool = True


class UserWithGroups(NamedTuple):
    """A user and its groups (id: name), read together."""

    user: UserRow
    groups: dict[int, str]

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def version(self) -> int:
        return self.user.version


@dataclass(frozen=True)
class GroupRow:
    id: int
    name: str
    version: int


def dialect(session: AsyncSession | Session) -> str:
    return session.get_bind().dialect.name


# Values an IN list on SQLite binds one by one at most (in_list).
SHORT_IN_LIST = 100


def in_list(
    session: AsyncSession | Session,
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    values: Collection[Any],
    type_: TypeEngine[Any],
) -> ColumnElement[bool]:
    """`column IN values`, however long the list.

    An expanded IN list needs one parameter per value, and both drivers cap
    those at about 32,000: a group of 50,000 members would not fit. So a
    long list is one bound parameter (an array; on SQLite a JSON array read
    by json_each). A short one on SQLite is a plain IN: the subquery costs
    more to build in Python than the whole statement costs SQLite to run.
    """
    if dialect(session) == "postgresql":
        return column == any_(literal(list(values), postgresql.ARRAY(type_)))
    if len(values) <= SHORT_IN_LIST:
        return column.in_(list(values))
    each = func.json_each(literal(json.dumps(list(values)))).table_valued("value")
    return column.in_(select(each.c.value))


def insert_ignoring_duplicates(session: AsyncSession | str) -> Any:
    """The dialect's insert() (a session's, or by name): it can say ON CONFLICT DO NOTHING."""
    name = session if isinstance(session, str) else dialect(session)
    return postgresql.insert if name == "postgresql" else sqlite.insert


class RowLocks:
    """The statements that lock one row by its key, built once: `for_delete` or not.

    NO KEY UPDATE lets others go on referencing the row (KEY SHARE)
    meanwhile; a delete takes the full lock at once, as upgrading to it
    later could deadlock with them.
    """

    def __init__(
        self,
        columns: Sequence[InstrumentedAttribute[Any]],
        key: InstrumentedAttribute[Any],
    ) -> None:
        found = select(*columns).where(key == bindparam("key"))
        self.updating = found.with_for_update(key_share=True)
        self.deleting = found.with_for_update()


async def lock_one(
    session: AsyncSession,
    locks: RowLocks,
    key: Any,
    make: Callable[..., T],
    *,
    for_delete: bool,
) -> T | None:
    """The row of this key, made by `make`, locked against other writers until commit."""
    query = locks.deleting if for_delete else locks.updating
    row = (await session.execute(query, {"key": key})).one_or_none()
    return None if row is None else make(*row)


async def lock_ids(
    session: AsyncSession, id_column: InstrumentedAttribute[int], ids: Sequence[int]
) -> None:
    """Lock the rows of these ids, in id order, so that writers never deadlock.

    SQLite needs no row locks: BEGIN IMMEDIATE lets one writer in at a time.
    """
    if ids and dialect(session) != "sqlite":
        await session.execute(
            select(id_column)
            .where(in_list(session, id_column, ids, BigInteger()))
            .order_by(id_column)
            .with_for_update(key_share=True)
        )


async def execute(
    session: AsyncSession, statement: Executable, parameters: dict[str, Any] | None = None
) -> Result[*tuple[Any, ...]]:
    """session.execute(statement, parameters) for a Core statement.

    In a group commit's turn on SQLite the session is bound to the batch's
    synchronous `sqlite3` connection (app.service.common.transaction), and
    the statement runs straight on it, inside the session's savepoint: the
    session's way there (a greenlet switch, the ORM's execute) cost more
    than SQLite's work, in a turn that every other writer waits for.
    """
    bind = session.sync_session.bind
    # A connection of a synchronous driver: one of an async driver needs
    # the session's greenlet to run a statement.
    if isinstance(bind, Connection) and not bind.dialect.is_async:
        return session.sync_session.connection().execute(statement, parameters)
    return await session.execute(statement, parameters)


class Prebuilt(Generic[S]):
    """A statement built once for each database dialect; its values are bound when it runs.

    Building a statement and computing its cache key cost more Python than
    SQLite takes to run it: the statements of the hottest writes are built
    once, with bindparam() where the values go (in_bound for a list).
    """

    def __init__(self, build: Callable[[str], S]) -> None:
        self._build = build
        self._built: dict[str, S] = {}

    def __call__(self, session: AsyncSession | Session) -> S:
        name = dialect(session)
        built = self._built.get(name)
        if built is None:
            built = self._built[name] = self._build(name)
        return built


def in_bound(
    dialect_name: str,
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    name: str,
    type_: TypeEngine[Any],
) -> ColumnElement[bool]:
    """`column IN` the list bound as `name` (its value from bound_list), for a Prebuilt.

    One parameter however long the list, as in_list: an array on
    PostgreSQL, a JSON array read by json_each on SQLite.
    """
    if dialect_name == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(type_)))
    each = func.json_each(bindparam(name, type_=String())).table_valued("value")
    return column.in_(select(each.c.value))


def bound_list(session: AsyncSession | Session, values: Collection[Any]) -> Any:
    """The value of a list parameter of in_bound on this session's database."""
    if dialect(session) == "postgresql":
        return list(values)
    return json.dumps(list(values))


def value_converter(column: ColumnElement[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """What SQLAlchemy does to a value of this column before the driver gets it.

    For the statements sent to the driver as they are (exec_driver_sql),
    so that they store the very values a compiled statement would.
    """
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _as_is


def _as_is(value: Any) -> Any:
    return value
