"""Queries on users."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from functools import partial
from itertools import product
from typing import Any, TypeVarTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, Membership, User
from app.repository.common import (
    NO_SYNC,
    SingleRead,
    UserRow,
    dialect,
    escape_like,
    in_list,
    sorted_json_array,
)

_COLUMNS = (User.id, User.userid, User.first_name, User.last_name, User.version)


Row = TypeVarTuple("Row")


def search_names(first_name: str, last_name: str) -> str:
    return f"{first_name.casefold()}\n{last_name.casefold()}"


def _record_json(dialect_name: str) -> ColumnElement[str]:
    """The user's record as JSON text, its groups sorted, built in SQL.

    The answer of the hottest reads is made by the database itself: one row
    of text instead of a row per group, a model and an encoder here (#7).
    The keys are those of app.schemas.UserRecord, in its order.
    """
    groups = sorted_json_array(
        dialect_name,
        Group.name,
        on=Membership.group_id == Group.id,
        where=Membership.user_id == User.id,
        outer=User,
    )
    if dialect_name == "postgresql":
        return _json_record(
            func.json_build_object, User.first_name, User.last_name, User.userid, groups
        )
    # json() marks the array as JSON for json_object, also across the subquery.
    return _json_record(
        func.json_object, User.first_name, User.last_name, User.userid, func.json(groups)
    )


def _json_record(
    build: Any, first_name: Any, last_name: Any, userid: Any, groups: Any
) -> ColumnElement[str]:
    """A UserRecord as JSON text, by the dialect's JSON object function, keys in its order."""
    record = build(
        literal_column("'first_name'"), first_name,
        literal_column("'last_name'"), last_name,
        literal_column("'userid'"), userid,
        literal_column("'groups'"), groups,
    )  # fmt: skip
    return cast(record, Text)


def _record(dialect_name: str) -> Select[int, int, str]:
    """The user's id, version and record (JSON text)."""
    return select(User.id, User.version, _record_json(dialect_name)).where(
        User.userid == bindparam("userid")
    )


_RECORD = SingleRead(_record)


async def get_record(session: AsyncSession, *, userid: str) -> tuple[int, int, str] | None:
    """(id, version, the record as JSON text) of the user, in one statement."""
    rows = await _RECORD.rows(session, {"userid": userid})
    if not rows:
        return None
    user_id, version, record = rows[0]
    return user_id, version, record


async def find(session: AsyncSession, *, userid: str) -> UserRow | None:
    row = (await session.execute(select(*_COLUMNS).where(User.userid == userid))).one_or_none()
    return None if row is None else UserRow(*row)


async def lock(session: AsyncSession, *, userid: str, for_delete: bool = False) -> UserRow | None:
    """The user, its row locked against other writers until the transaction ends.

    NO KEY UPDATE lets others go on referencing it (KEY SHARE) meanwhile; a
    delete takes the full lock at once, as upgrading to it later could
    deadlock with them.
    """
    row = (
        await session.execute(
            select(*_COLUMNS).where(User.userid == userid).with_for_update(key_share=not for_delete)
        )
    ).one_or_none()
    return None if row is None else UserRow(*row)


async def lock_ids(session: AsyncSession, *, ids: Sequence[int]) -> None:
    """Lock these users' rows, in id order, so that writers never deadlock.

    SQLite needs no row locks: BEGIN IMMEDIATE lets one writer in at a time.
    """
    if ids and dialect(session) != "sqlite":
        await session.execute(
            select(User.id)
            .where(in_list(session, User.id, ids, BigInteger()))
            .order_by(User.id)
            .with_for_update(key_share=True)
        )


async def insert_user(
    session: AsyncSession,
    *,
    userid: str,
    first_name: str,
    last_name: str,
    active: bool = True,
    external_id: str | None = None,
    display_name: str | None = None,
) -> int:
    """Insert a user (the SCIM attributes beside it have their defaults unless given).

    A duplicate userid raises IntegrityError from the unique key.
    """
    result = await session.execute(
        insert(User)
        .values(
            userid=userid,
            first_name=first_name,
            last_name=last_name,
            search_names=search_names(first_name, last_name),
            version=1,
            active=active,
            external_id=external_id,
            display_name=display_name,
            display_key=None if display_name is None else display_name.casefold(),
        )
        .returning(User.id)
    )
    return int(result.scalar_one())


class Keep(enum.Enum):
    """The value of an optional attribute that an update leaves as it is."""

    KEEP = enum.auto()


KEEP = Keep.KEEP


async def update_user(
    session: AsyncSession,
    *,
    user_id: int,
    first_name: str,
    last_name: str,
    active: bool | Keep = KEEP,
    external_id: str | Keep | None = KEEP,
    display_name: str | Keep | None = KEEP,
) -> int:
    """Set the names (and the SCIM attributes given) and bump the version; the new version."""
    values: dict[str, Any] = {
        "first_name": first_name,
        "last_name": last_name,
        "search_names": search_names(first_name, last_name),
        "version": User.version + 1,
        "updated_at": func.now(),
    }
    if not isinstance(active, Keep):
        values["active"] = active
    if not isinstance(external_id, Keep):
        values["external_id"] = external_id
    if not isinstance(display_name, Keep):
        values["display_name"] = display_name
        values["display_key"] = None if display_name is None else display_name.casefold()
    result = await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(values)
        .returning(User.version)
        .execution_options(**NO_SYNC)
    )
    return int(result.scalar_one())


async def bump(session: AsyncSession, *, ids: Sequence[int]) -> None:
    """A membership of these users changed: their records did too."""
    if ids:
        await session.execute(
            update(User)
            .where(in_list(session, User.id, ids, BigInteger()))
            .values(version=User.version + 1, updated_at=func.now())
            .execution_options(**NO_SYNC)
        )


async def delete_user(session: AsyncSession, *, user_id: int) -> None:
    """Delete a user; its memberships go with it (ON DELETE CASCADE)."""
    await session.execute(delete(User).where(User.id == user_id).execution_options(**NO_SYNC))


async def find_many(session: AsyncSession, *, userids: Sequence[str]) -> dict[str, int]:
    """Map the userids that exist to their ids, sharing their rows' keys until commit.

    KEY SHARE keeps them from being deleted under us, and lets their own
    writers go on.
    """
    if not userids:
        return {}
    rows = await session.execute(
        select(User.userid, User.id)
        .where(in_list(session, User.userid, userids, String()))
        .with_for_update(read=True, key_share=True)
    )
    return dict(rows.all())


def _filtered(query: Select[*Row], *, after: bool, group: bool, search: bool) -> Select[*Row]:
    """A page of `query` over users: userid order, :limit rows after :after, filters."""
    # SQLite's compiler always writes an OFFSET; the statement is compiled once
    # (app.fastread.compile_sqlite), so it is a named parameter, as :limit.
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
        return _filtered(select(User.userid, _record_json(dialect_name)), **filters)
    page = _filtered(
        select(User.id, User.userid, User.first_name, User.last_name), **filters
    ).subquery()
    names = func.json_agg(aggregate_order_by(Group.name, Group.name)).filter(Group.id.is_not(None))
    groups = func.coalesce(names, literal_column("'[]'::json"))
    record = _json_record(
        func.json_build_object, page.c.first_name, page.c.last_name, page.c.userid, groups
    )
    return (
        select(page.c.userid, record)
        .select_from(page)
        .outerjoin(Membership, Membership.user_id == page.c.id)
        .outerjoin(Group, Group.id == Membership.group_id)
        .group_by(page.c.id, page.c.userid, page.c.first_name, page.c.last_name)
        .order_by(page.c.userid)
    )


# One statement, compiled once, for each combination of the filters.
_PAGES = {
    flags: SingleRead(partial(_page, after=flags[0], group=flags[1], search=flags[2]))
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
        parameters["pattern"] = "%" + escape_like(search.casefold()) + "%"
    statement = _PAGES[(after is not None, group is not None, bool(search))]
    return [(userid, record) for userid, record in await statement.rows(session, parameters)]
