"""Reads of user records: one by userid, and keyset pages."""

from __future__ import annotations

from functools import partial
from itertools import product
from typing import Any, TypeVarTuple

from sqlalchemy import (
    Integer,
    Select,
    String,
    and_,
    bindparam,
    column,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, Membership, User
from app.reads.records import json_record, record_json
from app.reads.statement import SingleRead
from app.settings import DEFAULT_SEARCH_TIMEOUT_MS
from app.sql import escape_like

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


# How a search finds its users: none, a LIKE scan, or the substring index
# (alembic 0005, 0007). The index holds trigrams, so it serves a search of
# three characters or more; PostgreSQL's planner picks its pg_trgm indexes for
# the same LIKE by itself (the userid one is on lower(userid), so that only a
# search can use it, never an equality lookup), SQLite's FTS5 table is asked
# by name. lower(): SQLite's LIKE and FTS5 already ignore ASCII case.
NO_SEARCH, SCAN, INDEXED = "", "scan", "indexed"
_SEARCHES = (NO_SEARCH, SCAN, INDEXED)
_TRIGRAM = 3


def _filtered(
    query: Select[*Row], *, dialect_name: str, after: bool, group: bool, search: str
) -> Select[*Row]:
    """A page of `query` over users: userid order, :limit rows after :after, filters."""
    # SQLite's compiler always writes an OFFSET; the statement is compiled once
    # (app.reads.fast.compile_sqlite), so it is a named parameter, as :limit.
    query = query.order_by(User.userid)
    if after:
        query = query.where(User.userid > bindparam("after"))
    if group:
        query = query.join(Membership, Membership.user_id == User.id).where(
            Membership.group_id
            == select(Group.id).where(Group.name == bindparam("group")).scalar_subquery(),
            # A deactivated user is no member as the core API shows them.
            User.active.is_(True),
        )
    if search == INDEXED and dialect_name == "sqlite":
        found = text("SELECT rowid FROM users_search WHERE users_search MATCH :match")
        query = query.where(User.id.in_(found.columns(column("rowid", Integer))))
    elif search:
        pattern = bindparam("pattern", type_=String())
        query = query.where(
            or_(
                func.lower(User.userid).like(pattern, escape="\\"),
                User.search_names.like(pattern, escape="\\"),
            )
        )
    return query.limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer))


def _page(dialect_name: str, *, after: bool, group: bool, search: str) -> Select[str, str]:
    """(userid, record JSON) of a page of users (keyset, _filtered), in one statement.

    SQLite builds each record with its correlated subquery (as a lookup
    does); PostgreSQL runs one subquery per row slower than one join of the
    page with its memberships, grouped.
    """

    def filtered(query: Select[*Row]) -> Select[*Row]:
        return _filtered(query, dialect_name=dialect_name, after=after, group=group, search=search)

    if dialect_name != "postgresql":
        return filtered(select(User.userid, record_json(dialect_name)))
    page = filtered(
        select(User.id, User.userid, User.first_name, User.last_name, User.active)
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
        # A deactivated user's record shows no groups (records.record_json).
        .outerjoin(Membership, and_(Membership.user_id == page.c.id, page.c.active.is_(True)))
        .outerjoin(Group, Group.id == Membership.group_id)
        .group_by(page.c.id, page.c.userid, page.c.first_name, page.c.last_name)
        .order_by(page.c.userid)
    )


# One statement, compiled once, for each combination of the filters. A plain
# page reads at most `limit` users along the userid index, a bounded read
# that may take the fast path; a group or a search can scan the users table.
_PAGES = {
    (after, group, search): SingleRead(
        partial(_page, after=after, group=group, search=search),
        point=not (group or search),
    )
    for after, group, search in product((False, True), (False, True), _SEARCHES)
}


async def page(
    session: AsyncSession,
    *,
    after: str | None,
    limit: int,
    group: str | None = None,
    search: str | None = None,
    search_timeout_ms: int = DEFAULT_SEARCH_TIMEOUT_MS,
) -> list[tuple[str, str]]:
    """(userid, record JSON) of up to `limit` users after the userid `after`, in userid order.

    A search is stopped by the database after `search_timeout_ms`
    (StatementTimedOut): one too short for the index scans the table.
    """
    parameters: dict[str, Any] = {"limit": limit, "offset": 0}
    if after is not None:
        parameters["after"] = after
    if group is not None:
        parameters["group"] = group
    how = NO_SEARCH
    if search:
        folded = search.casefold()
        how = INDEXED if len(folded) >= _TRIGRAM else SCAN
        # An FTS5 phrase: the text as it is, its quotes doubled.
        parameters["match"] = '"' + folded.replace('"', '""') + '"'
        parameters["pattern"] = "%" + escape_like(folded) + "%"
    statement = _PAGES[(after is not None, group is not None, how)]
    timeout_ms = search_timeout_ms if how != NO_SEARCH else None
    rows = await statement.rows(session, parameters, timeout_ms=timeout_ms)
    return [(userid, record) for userid, record in rows]
