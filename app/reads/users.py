"""Reads of user records: one by userid, and keyset pages."""

from __future__ import annotations

from functools import partial
from itertools import product
from typing import Any, TypeVarTuple

from sqlalchemy import Integer, Select, String, bindparam, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, Membership, User
from app.reads.records import json_record, record_json
from app.reads.statement import SingleRead

Row = TypeVarTuple("Row")


def _record(dialect_name: str) -> Select[int, int, str]:
    """The user's id, version and record (JSON text)."""
    return select(User.id, User.version, record_json(dialect_name)).where(
        User.userid == bindparam("userid")
    )


_RECORD = SingleRead(_record, point=True)


async def get_record(session: AsyncSession, *, userid: str) -> tuple[int, int, str] | None:
    """(id, version, the record as JSON text) of the user, or None."""
    rows = await _RECORD.rows(session, {"userid": userid})
    if not rows:
        return None
    user_id, version, record = rows[0]
    return user_id, version, record


def _filtered(query: Select[*Row], *, after: bool, group: bool, search: bool) -> Select[*Row]:
    """A page of `query` over users: userid order, :limit rows after :after, filters."""
    # SQLite's compiler always writes an OFFSET; the statement is compiled once
    # (app.reads.fast.compile_sqlite), so it is a named parameter, as :limit.
    query = query.order_by(User.userid)
    if after:
        query = query.where(User.userid > bindparam("after"))
    if group:
        query = query.join(Membership, Membership.user_id == User.id).where(
            Membership.group_id
            == select(Group.id).where(Group.name == bindparam("group")).scalar_subquery()
        )
    if search:
        pattern = bindparam("pattern", type_=String())
        query = query.where(
            or_(
                User.userid.like(pattern, escape="\\"),
                User.search_names.like(pattern, escape="\\"),
            )
        )
    return query.limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer))


def _page(dialect_name: str, *, after: bool, group: bool, search: bool) -> Select[str, str]:
    """(userid, record JSON) of a page of users (keyset, _filtered), in one statement.

    SQLite builds each record with its correlated subquery (as a lookup
    does); PostgreSQL runs one subquery per row slower than one join of the
    page with its memberships, grouped.
    """
    filters = {"after": after, "group": group, "search": search}
    if dialect_name != "postgresql":
        return _filtered(select(User.userid, record_json(dialect_name)), **filters)
    page = _filtered(
        select(User.id, User.userid, User.first_name, User.last_name), **filters
    ).subquery()
    names = func.json_agg(aggregate_order_by(Group.name, Group.name)).filter(Group.id.is_not(None))
    groups = func.coalesce(names, literal_column("'[]'::json"))
    record = json_record(
        func.json_build_object,
        {
            "first_name": page.c.first_name,
            "last_name": page.c.last_name,
            "userid": page.c.userid,
            "groups": groups,
        },
    )
    return (
        select(page.c.userid, record)
        .select_from(page)
        .outerjoin(Membership, Membership.user_id == page.c.id)
        .outerjoin(Group, Group.id == Membership.group_id)
        .group_by(page.c.id, page.c.userid, page.c.first_name, page.c.last_name)
        .order_by(page.c.userid)
    )


# One statement, compiled once, for each combination of the filters. A plain
# page reads at most `limit` users along the userid index, a bounded read
# that may take the fast path; a group or a search can scan the users table.
_PAGES = {
    flags: SingleRead(
        partial(_page, after=flags[0], group=flags[1], search=flags[2]),
        point=not (flags[1] or flags[2]),
    )
    for flags in product((False, True), repeat=3)
}


async def page(
    session: AsyncSession,
    *,
    after: str | None,
    limit: int,
    group: str | None = None,
    search: str | None = None,
) -> list[tuple[str, str]]:
    """(userid, record JSON) of up to `limit` users after the userid `after`, in userid order."""
    parameters: dict[str, Any] = {"limit": limit, "offset": 0}
    if after is not None:
        parameters["after"] = after
    if group is not None:
        parameters["group"] = group
    if search:
        parameters["pattern"] = "%" + _escape_like(search.casefold()) + "%"
    statement = _PAGES[(after is not None, group is not None, bool(search))]
    return [(userid, record) for userid, record in await statement.rows(session, parameters)]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
