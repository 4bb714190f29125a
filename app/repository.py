"""Queries over users, groups and memberships; no business rules."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    any_,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.type_api import TypeEngine

from app.models import Group, Membership, User

# Statements here are bulk SQL: no ORM objects are loaded that the ORM would
# have to bring in line (it would otherwise fetch every deleted row back).
_NO_SYNC: dict[str, Any] = {"synchronize_session": False}


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


def _in_list(
    session: AsyncSession,
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    values: Collection[Any],
    type_: TypeEngine[Any],
) -> ColumnElement[bool]:
    """`column IN values` with one bound parameter, however long the list.

    An expanded IN list needs one parameter per value, and both drivers cap
    those at about 32,000: a group of 50,000 members would not fit.
    """
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(list(values), postgresql.ARRAY(type_)))
    each = func.json_each(literal(json.dumps(list(values)))).table_valued("value")
    return column.in_(select(each.c.value))


def _insert(session: AsyncSession) -> Any:
    # INSERT ... ON CONFLICT DO NOTHING is spelt by each dialect's own insert().
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


# Users


async def get_user_with_groups(
    session: AsyncSession, *, userid: str
) -> tuple[UserRow, list[str]] | None:
    """The user and the sorted names of its groups, in one statement."""
    rows = (
        await session.execute(
            select(User.id, User.userid, User.first_name, User.last_name, User.version, Group.name)
            .outerjoin(Membership, Membership.user_id == User.id)
            .outerjoin(Group, Group.id == Membership.group_id)
            .where(User.userid == userid)
            .order_by(Group.name)
        )
    ).all()
    if not rows:
        return None
    first = rows[0]
    user = UserRow(first.id, first.userid, first.first_name, first.last_name, first.version)
    return user, [row.name for row in rows if row.name is not None]


async def lock_user(session: AsyncSession, *, userid: str) -> UserRow | None:
    """The user, its row locked against other writers until the transaction ends."""
    row = (
        await session.execute(
            select(User.id, User.userid, User.first_name, User.last_name, User.version)
            .where(User.userid == userid)
            # NO KEY UPDATE: writers of this user wait, while others may still
            # reference it from memberships (KEY SHARE) without deadlocking.
            .with_for_update(key_share=True)
        )
    ).one_or_none()
    return None if row is None else UserRow(*row)


async def insert_user(
    session: AsyncSession, *, userid: str, first_name: str, last_name: str
) -> int:
    """Insert a user; a duplicate userid raises IntegrityError from the unique key."""
    result = await session.execute(
        insert(User)
        .values(userid=userid, first_name=first_name, last_name=last_name, version=1)
        .returning(User.id)
    )
    return int(result.scalar_one())


async def update_user(
    session: AsyncSession, *, user_id: int, first_name: str, last_name: str
) -> None:
    await session.execute(
        update(User)
        .execution_options(**_NO_SYNC)
        .where(User.id == user_id)
        .values(
            first_name=first_name,
            last_name=last_name,
            version=User.version + 1,
            updated_at=func.now(),
        )
    )


async def delete_user(session: AsyncSession, *, userid: str) -> bool:
    """Delete a user; its memberships go with it (ON DELETE CASCADE)."""
    result = await session.execute(
        delete(User).where(User.userid == userid).returning(User.id).execution_options(**_NO_SYNC)
    )
    return result.first() is not None


async def find_users(session: AsyncSession, *, userids: Sequence[str]) -> dict[str, int]:
    """Map the userids that exist to their ids, sharing their rows' keys until commit.

    KEY SHARE keeps them from being deleted under us, and lets their own
    writers go on.
    """
    if not userids:
        return {}
    rows = await session.execute(
        select(User.userid, User.id)
        .where(_in_list(session, User.userid, userids, String()))
        .with_for_update(read=True, key_share=True)
    )
    return dict(rows.all())


async def set_user_groups(session: AsyncSession, *, user_id: int, group_ids: Sequence[int]) -> None:
    """Make the user a member of exactly these groups, touching only what differs."""
    await _replace_memberships(session, user_ids=[user_id], group_ids=group_ids, owner="user")


# Groups


async def lock_group(session: AsyncSession, *, name: str) -> GroupRow | None:
    """The group, its row locked against other writers until the transaction ends."""
    row = (
        await session.execute(
            select(Group.id, Group.name, Group.version)
            .where(Group.name == name)
            .with_for_update(key_share=True)
        )
    ).one_or_none()
    return None if row is None else GroupRow(*row)


async def insert_group(session: AsyncSession, *, name: str) -> int:
    """Insert a group; a duplicate name raises IntegrityError from the unique key."""
    result = await session.execute(insert(Group).values(name=name, version=1).returning(Group.id))
    return int(result.scalar_one())


async def delete_group(session: AsyncSession, *, name: str) -> bool:
    """Delete a group; its memberships go with it (ON DELETE CASCADE)."""
    result = await session.execute(
        delete(Group).where(Group.name == name).returning(Group.id).execution_options(**_NO_SYNC)
    )
    return result.first() is not None


async def group_exists(session: AsyncSession, *, name: str) -> bool:
    return bool(await session.scalar(select(exists().where(Group.name == name))))


async def group_members(session: AsyncSession, *, name: str) -> list[str]:
    """Sorted userids of the group's members; empty for an unknown group too."""
    rows = await session.scalars(
        select(User.userid)
        .join(Membership, Membership.user_id == User.id)
        .join(Group, Group.id == Membership.group_id)
        .where(Group.name == name)
        .order_by(User.userid)
    )
    return list(rows)


async def find_groups(session: AsyncSession, *, names: Sequence[str]) -> dict[str, int]:
    """Map the group names that exist to their ids, sharing their keys until commit."""
    if not names:
        return {}
    rows = await session.execute(
        select(Group.name, Group.id)
        .where(_in_list(session, Group.name, names, String()))
        .with_for_update(read=True, key_share=True)
    )
    return dict(rows.all())


async def set_group_members(
    session: AsyncSession, *, group_id: int, user_ids: Sequence[int]
) -> None:
    """Make exactly these users the group's members, touching only what differs."""
    await _replace_memberships(session, user_ids=user_ids, group_ids=[group_id], owner="group")


async def _replace_memberships(
    session: AsyncSession,
    *,
    user_ids: Sequence[int],
    group_ids: Sequence[int],
    owner: Literal["user", "group"],
) -> None:
    """Replace the owner's memberships by the pairs owner x others, in two statements.

    Rows that stay are left alone; the others' rows must exist (the caller
    holds their keys).
    """
    if owner == "user":
        (owner_id,), owned, others, other_ids = (
            user_ids,
            Membership.user_id,
            Membership.group_id,
            group_ids,
        )
        pairs = select(Group.id, literal(owner_id, BigInteger())).where(
            _in_list(session, Group.id, other_ids, BigInteger())
        )
    else:
        (owner_id,), owned, others, other_ids = (
            group_ids,
            Membership.group_id,
            Membership.user_id,
            user_ids,
        )
        pairs = select(literal(owner_id, BigInteger()), User.id).where(
            _in_list(session, User.id, other_ids, BigInteger())
        )
    gone = ~_in_list(session, others, other_ids, BigInteger()) if other_ids else true()
    await session.execute(
        delete(Membership).where(owned == owner_id, gone).execution_options(**_NO_SYNC)
    )
    if other_ids:
        insert = _insert(session)
        await session.execute(
            insert(Membership).from_select(["group_id", "user_id"], pairs).on_conflict_do_nothing()
        )


async def touch_group(session: AsyncSession, *, group_id: int) -> None:
    await session.execute(
        update(Group)
        .execution_options(**_NO_SYNC)
        .where(Group.id == group_id)
        .values(version=Group.version + 1, updated_at=func.now())
    )
