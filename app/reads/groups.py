"""Reads of groups: one with its member list, and keyset pages with member counts."""

from __future__ import annotations

from functools import partial

from sqlalchemy import Integer, Select, Text, and_, bindparam, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, Membership, User
from app.reads.records import sorted_json_array
from app.reads.statement import SingleRead
from app.repository.common import GroupRow

_COLUMNS = (Group.id, Group.name, Group.version)


def _with_members(dialect_name: str) -> Select[int, str, int, str]:
    """The group and its active members' userids as one sorted JSON array text, built in SQL."""
    members = sorted_json_array(
        dialect_name,
        User.userid,
        on=Membership.user_id == User.id,
        # A deactivated user is no member as the core API shows them.
        where=and_(Membership.group_id == Group.id, User.active.is_(True)),
        outer=Group,
    )
    return select(*_COLUMNS, cast(members, Text)).where(Group.name == bindparam("name"))


_WITH_MEMBERS = SingleRead(_with_members, point=True)


async def get_with_members(session: AsyncSession, *, name: str) -> tuple[GroupRow, str] | None:
    """The group and the JSON array of its members' sorted userids, or None."""
    rows = await _WITH_MEMBERS.rows(session, {"name": name})
    if not rows:
        return None
    row = rows[0]
    return GroupRow(*row[:3]), row[3]


def _page(_dialect: str, *, after: bool) -> Select[str, int]:
    groups = select(Group.id, Group.name).order_by(Group.name)
    if after:
        groups = groups.where(Group.name > bindparam("after"))
    chosen = (
        groups.limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
        .subquery()
    )
    # Only active users count, as only they show in the group's member list.
    return (
        select(chosen.c.name, func.count(User.id))
        .outerjoin(Membership, Membership.group_id == chosen.c.id)
        .outerjoin(User, and_(User.id == Membership.user_id, User.active.is_(True)))
        .group_by(chosen.c.id, chosen.c.name)
        .order_by(chosen.c.name)
    )


# Counting members reads every membership of the page's groups: not a
# bounded read, so never on the event loop's thread.
_PAGES = {after: SingleRead(partial(_page, after=after), point=False) for after in (False, True)}


async def page(session: AsyncSession, *, after: str | None, limit: int) -> list[tuple[str, int]]:
    """Up to `limit` groups after the name `after`, in name order, with active member counts."""
    parameters: dict[str, str | int] = {"limit": limit, "offset": 0}
    if after is not None:
        parameters["after"] = after
    rows = await _PAGES[after is not None].rows(session, parameters)
    return [(name, int(count)) for name, count in rows]
