"""Queries on memberships: the pairs (group, user)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Delete, Select, bindparam, delete, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.models import Group, Membership, User
from app.repository import groups as group_repo
from app.repository.common import (
    NO_SYNC,
    Prebuilt,
    bound_list,
    dialect,
    execute,
    in_bound,
    in_list,
    insert_ignoring_duplicates,
)


async def group_ids_of(session: AsyncSession, *, user_id: int) -> set[int]:
    rows = await session.scalars(select(Membership.group_id).where(Membership.user_id == user_id))
    return set(rows)


async def members_of(session: AsyncSession, *, group_id: int) -> dict[int, str]:
    """The group's members: their ids and userids."""
    rows = await session.execute(
        select(User.id, User.userid)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.group_id == group_id)
    )
    return {int(user_id): userid for user_id, userid in rows}


async def add_for_user(session: AsyncSession, *, user_id: int, group_ids: Sequence[int]) -> None:
    """Make the user a member of these groups; memberships it has stay as they are."""
    if group_ids:
        parameters = {"member_id": user_id, "group_ids": bound_list(session, group_ids)}
        await execute(session, _ADD_FOR_USER(session), parameters)


def _adding_for_user(name: str) -> Any:
    pairs = select(Group.id, bindparam("member_id", type_=BigInteger())).where(
        in_bound(name, Group.id, "group_ids", BigInteger())
    )
    # The table, not the entity: the ORM would take one dict of values for a bulk insert.
    insert = insert_ignoring_duplicates(name)
    return (
        insert(Membership.__table__)
        .from_select(["group_id", "user_id"], pairs)
        .on_conflict_do_nothing()
    )


_ADD_FOR_USER = Prebuilt(_adding_for_user)


def _pairs_for_user(
    session: AsyncSession, user_id: int, group_ids: Sequence[int]
) -> Select[int, int]:
    return select(Group.id, literal(user_id, BigInteger())).where(
        in_list(session, Group.id, group_ids, BigInteger())
    )


async def add_for_group(session: AsyncSession, *, group_id: int, user_ids: Sequence[int]) -> None:
    """Make these users members of the group; members it has stay as they are."""
    if user_ids:
        pairs = select(literal(group_id, BigInteger()), User.id).where(
            in_list(session, User.id, user_ids, BigInteger())
        )
        await _insert_pairs(session, pairs)


async def _insert_pairs(session: AsyncSession, pairs: Select[int, int]) -> None:
    await session.execute(_inserting(session, pairs))


def _inserting(session: AsyncSession | str, pairs: Select[int, int]) -> Any:
    # INSERT ... SELECT: one statement and one list parameter, however many pairs.
    insert = insert_ignoring_duplicates(session)
    return insert(Membership).from_select(["group_id", "user_id"], pairs).on_conflict_do_nothing()


async def change_for_user(
    session: AsyncSession, *, user_id: int, added: Sequence[int], removed: Sequence[int]
) -> None:
    """The user joins the groups `added` and leaves `removed`; those groups are bumped.

    On PostgreSQL one statement (the membership writes are CTEs of the
    groups' bump); SQLite, where no CTE may write, runs them one by one.
    """
    changed = sorted({*added, *removed})
    if not changed:
        return
    if dialect(session) != "postgresql":
        await remove_for_user(session, user_id=user_id, group_ids=removed)
        await add_for_user(session, user_id=user_id, group_ids=added)
        await group_repo.bump(session, ids=changed)
        return
    statement = group_repo.bumping_where(in_list(session, Group.id, changed, BigInteger()))
    if removed:
        statement = statement.add_cte(
            _removing(session, Membership.user_id, user_id, Membership.group_id, removed).cte(
                "removed"
            )
        )
    if added:
        statement = statement.add_cte(
            _inserting(session, _pairs_for_user(session, user_id, added)).cte("added")
        )
    await session.execute(statement)


async def remove_for_user(session: AsyncSession, *, user_id: int, group_ids: Sequence[int]) -> None:
    await _remove(session, Membership.user_id, user_id, Membership.group_id, group_ids)


async def remove_for_group(
    session: AsyncSession, *, group_id: int, user_ids: Sequence[int]
) -> None:
    await _remove(session, Membership.group_id, group_id, Membership.user_id, user_ids)


async def _remove(
    session: AsyncSession,
    side: InstrumentedAttribute[int],
    side_id: int,
    other: InstrumentedAttribute[int],
    other_ids: Sequence[int],
) -> None:
    """Delete the memberships of one user (or group) with any of `other_ids` on the other side."""
    if other_ids:
        await session.execute(_removing(session, side, side_id, other, other_ids))


def _removing(
    session: AsyncSession,
    side: InstrumentedAttribute[int],
    side_id: int,
    other: InstrumentedAttribute[int],
    other_ids: Sequence[int],
) -> Delete:
    return (
        delete(Membership)
        .where(side == side_id, in_list(session, other, other_ids, BigInteger()))
        .execution_options(**NO_SYNC)
    )


async def remove(session: AsyncSession, *, group_id: int, user_id: int) -> bool:
    """Delete one membership; False when there was none."""
    result = await session.execute(
        delete(Membership)
        .where(Membership.group_id == group_id, Membership.user_id == user_id)
        .returning(Membership.user_id)
        .execution_options(**NO_SYNC)
    )
    return result.first() is not None


async def add_one(session: AsyncSession, *, group_id: int, user_id: int) -> bool:
    """Insert one membership; False when it was there already."""
    insert = insert_ignoring_duplicates(session)
    result = await session.execute(
        insert(Membership)
        .values(group_id=group_id, user_id=user_id)
        .on_conflict_do_nothing()
        .returning(Membership.user_id)
    )
    return result.first() is not None
