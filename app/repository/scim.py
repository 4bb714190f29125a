"""Queries of the SCIM endpoints: the SCIM attributes beside users and groups, and pages of them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.models import Group, Membership, User, UserEmail
from app.predicates import Predicate
from app.repository.common import NO_SYNC, in_list
from app.repository.scim_filters import group_condition, user_condition
from app.sql import escape_like


@dataclass(frozen=True)
class EmailRow:
    """One of a user's emails, in the order the client gave them."""

    value: str
    type: str | None
    primary: bool


@dataclass(frozen=True)
class ScimUserRow:
    id: int
    userid: str
    first_name: str
    last_name: str
    version: int
    created_at: datetime
    updated_at: datetime
    active: bool
    external_id: str | None
    display_name: str | None


@dataclass(frozen=True)
class ScimGroupRow:
    id: int
    name: str
    version: int
    created_at: datetime
    updated_at: datetime
    display_name: str
    external_id: str | None


_USER_COLUMNS = (
    User.id,
    User.userid,
    User.first_name,
    User.last_name,
    User.version,
    User.created_at,
    User.updated_at,
    User.active,
    User.external_id,
    User.display_name,
)
_GROUP_COLUMNS = (
    Group.id,
    Group.name,
    Group.version,
    Group.created_at,
    Group.updated_at,
    func.coalesce(Group.display_name, Group.name),
    Group.external_id,
)


async def user(session: AsyncSession, *, userid: str, lock: bool = False) -> ScimUserRow | None:
    query = select(*_USER_COLUMNS).where(User.userid == userid)
    if lock:
        query = query.with_for_update(key_share=True)
    row = (await session.execute(query)).one_or_none()
    return None if row is None else ScimUserRow(*tuple(row))


async def _page(
    session: AsyncSession,
    columns: Sequence[Any],
    condition: ColumnElement[bool],
    order: InstrumentedAttribute[str],
    offset: int,
    limit: int,
) -> Sequence[Row[Any]]:
    """The rows `offset` to `offset + limit` of those matching `condition`, in `order`."""
    if limit <= 0:
        return []
    query = select(*columns).where(condition).order_by(order).offset(offset).limit(limit)
    return (await session.execute(query)).all()


async def users(
    session: AsyncSession, *, where: Predicate | None, offset: int, limit: int
) -> list[ScimUserRow]:
    """A page of the users matching `where` (None: all), in userid order."""
    rows = await _page(session, _USER_COLUMNS, user_condition(where), User.userid, offset, limit)
    return [ScimUserRow(*tuple(row)) for row in rows]


async def count_users(session: AsyncSession, *, where: Predicate | None) -> int:
    query = select(func.count()).select_from(User).where(user_condition(where))
    return int(await session.scalar(query) or 0)


async def emails_of(session: AsyncSession, *, user_ids: Sequence[int]) -> dict[int, list[EmailRow]]:
    if not user_ids:
        return {}
    rows = await session.execute(
        select(UserEmail.user_id, UserEmail.value, UserEmail.type, UserEmail.is_primary)
        .where(in_list(session, UserEmail.user_id, user_ids, BigInteger()))
        .order_by(UserEmail.user_id, UserEmail.position)
    )
    found: dict[int, list[EmailRow]] = defaultdict(list)
    for user_id, value, type_, primary in rows:
        found[user_id].append(EmailRow(value, type_, bool(primary)))
    return found


async def groups_of(
    session: AsyncSession, *, user_ids: Sequence[int]
) -> dict[int, list[tuple[str, str]]]:
    """Each user's groups as (name, displayName), in name order."""
    if not user_ids:
        return {}
    rows = await session.execute(
        select(Membership.user_id, Group.name, func.coalesce(Group.display_name, Group.name))
        .join(Group, Group.id == Membership.group_id)
        .where(in_list(session, Membership.user_id, user_ids, BigInteger()))
        .order_by(Membership.user_id, Group.name)
    )
    found: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for user_id, name, display in rows:
        found[user_id].append((name, display))
    return found


async def set_emails(session: AsyncSession, *, user_id: int, emails: Sequence[EmailRow]) -> None:
    await session.execute(
        delete(UserEmail).where(UserEmail.user_id == user_id).execution_options(**NO_SYNC)
    )
    if emails:
        await session.execute(
            insert(UserEmail),
            [
                {
                    "user_id": user_id,
                    "position": position,
                    "value": email.value,
                    "value_key": email.value.casefold(),
                    "type": email.type,
                    "is_primary": email.primary,
                }
                for position, email in enumerate(emails)
            ],
        )


async def group(session: AsyncSession, *, name: str, lock: bool = False) -> ScimGroupRow | None:
    query = select(*_GROUP_COLUMNS).where(Group.name == name)
    if lock:
        query = query.with_for_update(key_share=True)
    row = (await session.execute(query)).one_or_none()
    return None if row is None else ScimGroupRow(*row)


async def groups(
    session: AsyncSession, *, where: Predicate | None, offset: int, limit: int
) -> list[ScimGroupRow]:
    """A page of the groups matching `where` (None: all), in name order."""
    rows = await _page(session, _GROUP_COLUMNS, group_condition(where), Group.name, offset, limit)
    return [ScimGroupRow(*tuple(row)) for row in rows]


async def count_groups(session: AsyncSession, *, where: Predicate | None) -> int:
    query = select(func.count()).select_from(Group).where(group_condition(where))
    return int(await session.scalar(query) or 0)


async def member_counts(session: AsyncSession, *, group_ids: Sequence[int]) -> dict[int, int]:
    """How many members each of these groups has (none: absent), from the memberships' key."""
    if not group_ids:
        return {}
    rows = await session.execute(
        select(Membership.group_id, func.count())
        .where(in_list(session, Membership.group_id, group_ids, BigInteger()))
        .group_by(Membership.group_id)
    )
    return {int(group_id): int(count) for group_id, count in rows}


async def members_of(
    session: AsyncSession, *, group_ids: Sequence[int]
) -> dict[int, list[tuple[str, str]]]:
    """Each group's members as (userid, display), in userid order.

    The display is the user's displayName, or "first last" for a user without one.
    """
    if not group_ids:
        return {}
    shown = func.coalesce(User.display_name, User.first_name + " " + User.last_name)
    rows = await session.execute(
        select(Membership.group_id, User.userid, shown)
        .join(User, User.id == Membership.user_id)
        .where(in_list(session, Membership.group_id, group_ids, BigInteger()))
        .order_by(Membership.group_id, User.userid)
    )
    found: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for group_id, userid, display in rows:
        found[group_id].append((userid, display))
    return found


async def display_key_taken(
    session: AsyncSession, *, display_name: str, but: int | None = None
) -> bool:
    """Whether another group shows this displayName, ignoring case."""
    query = select(Group.id).where(
        func.coalesce(Group.display_key, Group.name) == display_name.casefold()
    )
    if but is not None:
        query = query.where(Group.id != but)
    return (await session.execute(query.limit(1))).first() is not None


async def names_like(session: AsyncSession, *, base: str) -> set[str]:
    """The group names that are `base` or `base` and a suffix."""
    escaped = escape_like(base)
    rows = await session.scalars(
        select(Group.name).where(Group.name.like(f"{escaped}%", escape="\\"))
    )
    return set(rows)


async def insert_group(
    session: AsyncSession, *, name: str, display_name: str, external_id: str | None
) -> int:
    """Insert a group; a name or displayName taken raises IntegrityError."""
    result = await session.execute(
        insert(Group)
        .values(
            name=name,
            display_name=display_name,
            display_key=display_name.casefold(),
            external_id=external_id,
            version=1,
        )
        .returning(Group.id)
    )
    return int(result.scalar_one())


async def update_group(
    session: AsyncSession, *, group_id: int, display_name: str, external_id: str | None
) -> None:
    """Set the attributes and bump the version."""
    await session.execute(
        update(Group)
        .where(Group.id == group_id)
        .values(
            display_name=display_name,
            display_key=display_name.casefold(),
            external_id=external_id,
            version=Group.version + 1,
            updated_at=func.now(),
        )
        .execution_options(**NO_SYNC)
    )
