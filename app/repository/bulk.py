"""Queries of bulk import and export: a batch of rows per statement, never one per row."""

from __future__ import annotations

import json
import operator
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.type_api import TypeEngine

from app.models import Group, Membership, User
from app.repository.common import NO_SYNC, dialect, in_list
from app.repository.users import search_names

# Separates a user's group names in one text column; names never hold it.
GROUP_SEPARATOR = ";"

# What SQLite may keep in memory while it fills the tables: the indexes of a
# million users and their memberships, so that inserting into them does not
# read and write pages back and forth (negative: KiB).
_SQLITE_BULK_CACHE_KIB = 2000
_SQLITE_DEFAULT_CACHE = -2000


def _rows(
    session: AsyncSession, columns: Sequence[tuple[str, TypeEngine[Any]]], rows: Sequence[Any]
) -> FromClause:
    """The rows as a table with these columns, passed as one parameter per column (or one).

    PostgreSQL unnests one array per column; SQLite walks one JSON array of rows.
    """
    if dialect(session) == "postgresql":
        arrays = [
            literal([row[index] for row in rows], postgresql.ARRAY(type_))
            for index, (_, type_) in enumerate(columns)
        ]
        return func.unnest(*arrays).table_valued(*(name for name, _ in columns)).render_derived()
    each = func.json_each(literal(json.dumps(rows, ensure_ascii=False))).table_valued("value")
    return select(
        *(
            func.json_extract(each.c.value, f"$[{index}]").label(name)
            for index, (name, _) in enumerate(columns)
        )
    ).subquery()


async def prepare(session: AsyncSession) -> None:
    """Make the connection ready to write many rows in one transaction."""
    if dialect(session) == "sqlite":
        await session.execute(text(f"PRAGMA cache_size = -{_SQLITE_BULK_CACHE_KIB}"))


async def finish(session: AsyncSession) -> None:
    """Give back what prepare() took: the connection may go back to a pool."""
    if dialect(session) == "sqlite":
        await session.execute(text(f"PRAGMA cache_size = {_SQLITE_DEFAULT_CACHE}"))


async def last_user_id(session: AsyncSession) -> int:
    """The highest user id so far: users above it were created after this call."""
    return int(await session.scalar(select(func.coalesce(func.max(User.id), 0))) or 0)


async def insert_groups(session: AsyncSession, *, names: Sequence[str]) -> dict[str, int]:
    """Create these groups (version 1); a name that exists raises IntegrityError."""
    if not names:
        return {}
    source = _rows(session, [("name", String())], [[name] for name in names])
    result = await session.execute(
        insert(Group)
        .from_select(["name", "version"], select(source.c.name, literal(1, Integer())))
        .returning(Group.name, Group.id)
    )
    return {name: int(group_id) for name, group_id in result}


async def insert_users(session: AsyncSession, *, users: Sequence[tuple[str, str, str]]) -> None:
    """Insert (userid, first_name, last_name) rows, version 1, in one statement.

    A userid that exists raises IntegrityError from the unique key.
    """
    if not users:
        return
    rows = [[userid, first, last, search_names(first, last)] for userid, first, last in users]
    source = _rows(
        session,
        [
            ("userid", String()),
            ("first_name", String()),
            ("last_name", String()),
            ("search_names", String()),
        ],
        rows,
    )
    await session.execute(
        insert(User).from_select(
            ["userid", "first_name", "last_name", "search_names", "version"],
            select(
                source.c.userid,
                source.c.first_name,
                source.c.last_name,
                source.c.search_names,
                literal(1, Integer()),
            ),
        )
    )


async def add_memberships(session: AsyncSession, *, pairs: Sequence[tuple[int, str]]) -> None:
    """Insert memberships given as (group id, userid), in one statement."""
    if not pairs:
        return
    # In group order the primary key (group_id, user_id) is filled group by
    # group instead of at a random place for every row.
    source = _rows(
        session,
        [("group_id", BigInteger()), ("userid", String())],
        sorted(pairs, key=operator.itemgetter(0)),
    )
    await session.execute(
        insert(Membership).from_select(
            ["group_id", "user_id"],
            select(source.c.group_id, User.id).join_from(
                source, User, User.userid == source.c.userid
            ),
        )
    )


async def current(
    session: AsyncSession, *, ids: Sequence[int]
) -> dict[int, tuple[str, str, dict[str, int]]]:
    """(first_name, last_name, {group name: group id}) of each of these users."""
    if not ids:
        return {}
    users = await session.execute(
        select(User.id, User.first_name, User.last_name).where(
            in_list(session, User.id, ids, BigInteger())
        )
    )
    found: dict[int, tuple[str, str, dict[str, int]]] = {
        int(user_id): (first, last, {}) for user_id, first, last in users
    }
    groups = await session.execute(
        select(Membership.user_id, Group.name, Group.id)
        .join(Group, Group.id == Membership.group_id)
        .where(in_list(session, Membership.user_id, ids, BigInteger()))
    )
    for user_id, name, group_id in groups:
        found[int(user_id)][2][name] = int(group_id)
    return found


async def replace_users(session: AsyncSession, *, users: Sequence[tuple[int, str, str]]) -> None:
    """Set (id, first_name, last_name) and bump each version, in one statement."""
    if not users:
        return
    source = _rows(
        session,
        [
            ("id", BigInteger()),
            ("first_name", String()),
            ("last_name", String()),
            ("search_names", String()),
        ],
        [[user_id, first, last, search_names(first, last)] for user_id, first, last in users],
    )
    await session.execute(
        update(User)
        .where(User.id == source.c.id)
        .values(
            first_name=source.c.first_name,
            last_name=source.c.last_name,
            search_names=source.c.search_names,
            version=User.version + 1,
            updated_at=func.now(),
        )
        .execution_options(**NO_SYNC)
    )


async def remove_memberships(session: AsyncSession, *, user_ids: Sequence[int]) -> None:
    """Take these users out of every group."""
    if user_ids:
        await session.execute(
            delete(Membership)
            .where(in_list(session, Membership.user_id, user_ids, BigInteger()))
            .execution_options(**NO_SYNC)
        )


async def count_users(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def stream_users(
    session: AsyncSession, *, batch_size: int
) -> AsyncIterator[list[tuple[str, str, str, list[str]]]]:
    """Every user as (userid, first_name, last_name, sorted groups), in userid order.

    One statement read through a cursor, `batch_size` rows at a time: memory
    stays flat however many users there are. Core rows, not ORM ones: there
    are a million of them.
    """
    query = select(User.userid, User.first_name, User.last_name, _group_names(session)).order_by(
        User.userid
    )
    connection = await session.connection()
    result = await connection.stream(query.execution_options(yield_per=batch_size))
    async for partition in result.partitions():
        # The aggregate's order is not guaranteed: sort here, alike on both databases.
        yield [
            (userid, first, last, sorted(names.split(GROUP_SEPARATOR)) if names else [])
            for userid, first, last, names in partition
        ]


def _group_names(session: AsyncSession) -> Any:
    """A user's group names joined by GROUP_SEPARATOR, or NULL (a correlated subquery).

    One index range per user (memberships by user_id) keeps the outer scan in
    userid order, so rows stream out as they are found, with no sort of the lot.
    """
    if dialect(session) == "postgresql":
        joined = func.string_agg(Group.name, literal(GROUP_SEPARATOR))
    else:
        joined = func.group_concat(Group.name, GROUP_SEPARATOR)
    return (
        select(joined)
        .select_from(Membership)
        .join(Group, Group.id == Membership.group_id)
        .where(Membership.user_id == User.id)
        .scalar_subquery()
    )
