"""Queries on groups."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    Table,
    Update,
    any_,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, Membership, User
from app.repository import common
from app.repository.common import (
    NO_SYNC,
    GroupRow,
    Prebuilt,
    RowLocks,
    bound_list,
    dialect,
    execute,
    in_bound,
    lock_one,
)

_COLUMNS = (Group.id, Group.name, Group.version)
# The table, not the entity, where a statement runs on every write: a Core
# statement skips the ORM's compile and bulk-update layers, which cost a
# write more than SQLite takes to run it (app.group_commit: while every
# other writer waits).
_GROUPS = cast(Table, Group.__table__)
_LOCKS = RowLocks(_COLUMNS, Group.name)


async def find(session: AsyncSession, *, name: str) -> GroupRow | None:
    row = (await session.execute(select(*_COLUMNS).where(Group.name == name))).one_or_none()
    return None if row is None else GroupRow(*row)


async def lock(session: AsyncSession, *, name: str, for_delete: bool = False) -> GroupRow | None:
    """The group, its row locked against other writers until the transaction ends."""
    return await lock_one(session, _LOCKS, name, GroupRow, for_delete=for_delete)


async def lock_ids(session: AsyncSession, *, ids: Sequence[int]) -> None:
    """Lock these groups' rows, in id order (common.lock_ids)."""
    await common.lock_ids(session, Group.id, ids)


async def insert_group(session: AsyncSession, *, name: str) -> GroupRow:
    """Insert a group; a duplicate name raises IntegrityError from the unique key.

    Its SCIM displayName is its name, and no other group may show that one.
    """
    result = await session.execute(
        insert(Group).values(name=name, display_key=name, version=1).returning(Group.id)
    )
    return GroupRow(int(result.scalar_one()), name, 1)


def bumping_where(condition: ColumnElement[bool]) -> Update:
    """Bump the groups that meet the condition: their member lists changed."""
    return (
        update(_GROUPS)
        .where(condition)
        .values(version=_GROUPS.c.version + 1, updated_at=func.now())
        .execution_options(**NO_SYNC)
    )


_BUMP = Prebuilt(lambda name: bumping_where(in_bound(name, _GROUPS.c.id, "ids", BigInteger())))


async def bump(session: AsyncSession, *, ids: Sequence[int]) -> None:
    """These groups' member lists changed."""
    if ids:
        await execute(session, _BUMP(session), {"ids": bound_list(session, ids)})


async def delete_group(session: AsyncSession, *, group_id: int) -> None:
    """Delete a group; its memberships go with it (ON DELETE CASCADE)."""
    await session.execute(delete(Group).where(Group.id == group_id).execution_options(**NO_SYNC))


async def find_many(
    session: AsyncSession, *, names: Sequence[str], changing: bool = False
) -> dict[str, int]:
    """Map the group names that exist to their ids, sharing their keys until commit.

    `changing`: their member lists are about to change, so their rows are
    locked against other writers instead, in id order (the lock order of
    app.service.member_lists): finding and locking them is one statement.
    """
    if not names:
        return {}
    query = (_FIND_CHANGING if changing else _FIND)(session)
    rows = await execute(session, query, {"names": bound_list(session, names)})
    return {name: int(group_id) for name, group_id in rows}


def _finding(name: str) -> Select[Any, Any]:
    groups = _GROUPS.c
    return select(groups.name, groups.id).where(in_bound(name, groups.name, "names", String()))


_FIND = Prebuilt(lambda name: _finding(name).with_for_update(read=True, key_share=True))
_FIND_CHANGING = Prebuilt(
    lambda name: _finding(name).order_by(_GROUPS.c.id).with_for_update(key_share=True)
)


async def lock_changing(
    session: AsyncSession, *, userid: str, wanted: Collection[int] = ()
) -> set[int]:
    """Lock, in id order, the groups whose member lists change when this user's
    groups become `wanted`: those it is in and leaves, those it joins. Their ids.

    The first step of a writer of a user's memberships (a deletion wants
    none): the groups come before the user in the lock order. Its current
    groups are found and locked in one statement; SQLite needs no row locks
    (BEGIN IMMEDIATE), and no statement.
    """
    if dialect(session) == "sqlite":
        return set()
    current = (
        select(Membership.group_id)
        .join(User, User.id == Membership.user_id)
        .where(User.userid == userid)
    )
    query = select(Group.id).where(Group.id.in_(current))
    if wanted:
        ids = literal(sorted(wanted), postgresql.ARRAY(BigInteger()))
        # Either side, less those on both: a union, so that the ids are looked up by key.
        either = union_all(current, select(func.unnest(ids)))
        query = select(Group.id).where(
            Group.id.in_(either), ~(Group.id.in_(current) & (Group.id == any_(ids)))
        )
    rows = await session.scalars(query.order_by(Group.id).with_for_update(key_share=True))
    return set(rows)
