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
_SQLITE_BULK_CACHE_KIB = 128 * 1024


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


async def prepare(session: AsyncSession) -> int | None:
    """Make the connection ready to write many rows in one transaction.

    Returns what finish() needs to put the connection back as it was.
    """
    if dialect(session) != "sqlite":
        return None
    cache = int(await session.scalar(text("PRAGMA cache_size")) or 0)
    await session.execute(text(f"PRAGMA cache_size = -{_SQLITE_BULK_CACHE_KIB}"))
    return cache


async def finish(session: AsyncSession, *, prepared: int | None) -> None:
    """Give back what prepare() took: the connection may go back to a pool."""
    if prepared is not None:
        await session.execute(text(f"PRAGMA cache_size = {int(prepared)}"))


async def analyze(session: AsyncSession) -> None:
    """Refresh the planner's statistics of the tables a bulk import filled.

    PostgreSQL plans with them; until autovacuum comes by, a million new rows
    would be planned as the few there were. SQLite keeps none here.
    """
    if dialect(session) == "postgresql":
        await session.execute(text("ANALYZE users, groups, memberships"))


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
        .from_select(
            # Their SCIM displayName is their name (see groups.insert_group).
            ["name", "display_key", "version"],
            select(source.c.name, source.c.name, literal(1, Integer())),
        )
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


async def groups_to_lock(session: AsyncSession, *, ids: Sequence[int]) -> dict[int, set[int]]:
    """The group ids of each of these users, read to plan which groups to lock first.

    SQLite takes no row locks (the import holds its write lock throughout):
    nothing to plan, and no statement.
    """
    if not ids or dialect(session) == "sqlite":
        return {}
    rows = await session.execute(
        select(Membership.user_id, Membership.group_id).where(
            in_list(session, Membership.user_id, ids, BigInteger())
        )
    )
    groups: dict[int, set[int]] = {}
    for user_id, group_id in rows:
        groups.setdefault(int(user_id), set()).add(int(group_id))
    return groups


async def current(
    session: AsyncSession, *, ids: Sequence[int]
) -> dict[int, tuple[str, str, dict[str, int], bool]]:
    """(first_name, last_name, {group name: group id}, active) of each of these users."""
    if not ids:
        return {}
    users = await session.execute(
        select(User.id, User.first_name, User.last_name, User.active).where(
            in_list(session, User.id, ids, BigInteger())
        )
    )
    found: dict[int, tuple[str, str, dict[str, int], bool]] = {
        int(user_id): (first, last, {}, bool(active)) for user_id, first, last, active in users
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

    Its only plan is the index of memberships by user_id, then each group by
    its key: the outer scan streams in userid order, and no join order is left
    to statistics (which right after a bulk import may not exist yet).
    """
    name = select(Group.name).where(Group.id == Membership.group_id).scalar_subquery()
    if dialect(session) == "postgresql":
        joined = func.string_agg(name, literal(GROUP_SEPARATOR))
    else:
        joined = func.group_concat(name, GROUP_SEPARATOR)
    # A deactivated user's record shows no groups, here as in GET /users/{userid}.
    return (
        select(joined).where(Membership.user_id == User.id, User.active.is_(True)).scalar_subquery()
    )
