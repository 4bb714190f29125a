"""Queries on users."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Insert,
    Select,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, Membership, User
from app.repository import common, memberships
from app.repository import groups as group_repo
from app.repository.common import (
    NO_SYNC,
    Prebuilt,
    RowLocks,
    UserRow,
    UserWithGroups,
    bound_list,
    dialect,
    execute,
    in_bound,
    in_list,
    lock_one,
)

_COLUMNS = (User.id, User.userid, User.first_name, User.last_name, User.version, User.active)


def search_names(first_name: str, last_name: str) -> str:
    return f"{first_name.casefold()}\n{last_name.casefold()}"


_FIND = select(*_COLUMNS).where(User.userid == bindparam("userid"))
_LOCKS = RowLocks(_COLUMNS, User.userid)
# The user's columns, then one (group id, name) per membership (None, None without).
_WITH_GROUPS: Select[*tuple[Any, ...]] = (
    select(*_COLUMNS, Group.id, Group.name)
    .outerjoin(Membership, Membership.user_id == User.id)
    .outerjoin(Group, Group.id == Membership.group_id)
    .where(User.userid == bindparam("userid"))
)
_GROUPS_OF = (
    select(Group.id, Group.name)
    .join(Membership, Membership.group_id == Group.id)
    .where(Membership.user_id == bindparam("user_id"))
)


async def find(session: AsyncSession, *, userid: str) -> UserRow | None:
    row = (await execute(session, _FIND, {"userid": userid})).one_or_none()
    return None if row is None else UserRow(*row)


async def _user_and_groups(session: AsyncSession, *, userid: str) -> UserWithGroups | None:
    rows = (await execute(session, _WITH_GROUPS, {"userid": userid})).all()
    if not rows:
        return None
    width = len(_COLUMNS)
    groups = {int(row[width]): row[width + 1] for row in rows if row[width] is not None}
    return UserWithGroups(UserRow(*rows[0][:width]), groups)


async def lock_with_groups(session: AsyncSession, *, userid: str) -> UserWithGroups | None:
    """The user, locked as `lock` locks it, and its groups (id: name) as they are then.

    Only the user's row is locked; the caller has locked the groups it
    changes before (the lock order). On PostgreSQL the memberships are a
    second statement: when the lock had to wait for another writer, a join in
    the locking statement would still show the memberships from before the
    wait (READ COMMITTED re-reads only the locked row), and a deletion would
    announce too few. SQLite runs one writer at a time: one statement.
    """
    if dialect(session) == "sqlite":
        return await _user_and_groups(session, userid=userid)
    user = await lock(session, userid=userid)
    if user is None:
        return None
    rows = await session.execute(_GROUPS_OF, {"user_id": user.id})
    return UserWithGroups(user, {int(group_id): name for group_id, name in rows})


async def lock(session: AsyncSession, *, userid: str, for_delete: bool = False) -> UserRow | None:
    """The user, its row locked against other writers until the transaction ends."""
    return await lock_one(session, _LOCKS, userid, UserRow, for_delete=for_delete)


async def lock_ids(session: AsyncSession, *, ids: Sequence[int]) -> None:
    """Lock these users' rows, in id order (common.lock_ids)."""
    await common.lock_ids(session, User.id, ids)


async def insert_user(
    session: AsyncSession,
    *,
    userid: str,
    first_name: str,
    last_name: str,
    active: bool = True,
    external_id: str | None = None,
    display_name: str | None = None,
    groups: Sequence[int] = (),
) -> int:
    """Insert a user (the SCIM attributes beside it have their defaults unless given).

    `groups`: it is made a member of these (locked) groups, which are bumped;
    on PostgreSQL in the same statement (CTEs), one round trip for all three.
    A duplicate userid raises IntegrityError from the unique key.
    """
    parameters = {
        "new_userid": userid,
        "new_first_name": first_name,
        "new_last_name": last_name,
        "new_search_names": search_names(first_name, last_name),
        "new_active": active,
        "new_external_id": external_id,
        "new_display_name": display_name,
        "new_display_key": None if display_name is None else display_name.casefold(),
    }
    if groups and dialect(session) == "postgresql":
        parameters["group_ids"] = bound_list(session, groups)
        return int((await session.execute(_CREATE_WITH_GROUPS(session), parameters)).scalar_one())
    user_id = int((await execute(session, _CREATE(session), parameters)).scalar_one())
    if groups:
        await memberships.add_for_user(session, user_id=user_id, group_ids=groups)
        await group_repo.bump(session, ids=groups)
    return user_id


# The table, not the entity, for the statements given one dict of values:
# the ORM would take it for a bulk insert.
_USERS = cast(Table, User.__table__)


def _inserting() -> Insert:
    """A new user of version 1: its values bound as new_<column> (insert_user's parameters).

    Not as <column>: the groups' UPDATE in _creating_with_groups would take
    a parameter named as one of their columns for a value to set.
    """
    names = "userid first_name last_name search_names active external_id display_name display_key"
    return insert(_USERS).values(
        version=1, **{name: bindparam(f"new_{name}") for name in names.split()}
    )


def _creating_with_groups(name: str) -> Select[int]:
    """The new user, member of the groups given, which are bumped: one statement (CTEs)."""
    new = _inserting().returning(_USERS.c.id).cte("new_user")
    ids = in_bound(name, Group.id, "group_ids", BigInteger())
    joined = insert(Membership).from_select(
        ["group_id", "user_id"],
        # Every group given, with the one new user: a product, on purpose.
        select(Group.id, new.c.id).join_from(Group, new, true()).where(ids),
    )
    return (
        select(new.c.id)
        .add_cte(joined.cte("joined"))
        .add_cte(group_repo.bumping_where(ids).cte("bumped"))
    )


_CREATE = Prebuilt(lambda _name: _inserting().returning(_USERS.c.id))
# PostgreSQL only: SQLite's INSERT cannot be a CTE.
_CREATE_WITH_GROUPS = Prebuilt(_creating_with_groups)


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
    if active is KEEP and external_id is KEEP and display_name is KEEP:
        parameters = {
            "target_id": user_id,
            "new_first_name": first_name,
            "new_last_name": last_name,
            "new_search_names": search_names(first_name, last_name),
        }
        return int((await execute(session, _RENAME, parameters)).scalar_one())
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


# The names alone, the common update (the parameters named as _inserting's).
_RENAME = (
    update(_USERS)
    .where(_USERS.c.id == bindparam("target_id"))
    .values(
        first_name=bindparam("new_first_name"),
        last_name=bindparam("new_last_name"),
        search_names=bindparam("new_search_names"),
        version=_USERS.c.version + 1,
        updated_at=func.now(),
    )
    .returning(_USERS.c.version)
)


async def bump(session: AsyncSession, *, ids: Sequence[int]) -> None:
    """A membership of these users changed: their records did too."""
    if ids:
        await session.execute(
            update(User)
            .where(in_list(session, User.id, ids, BigInteger()))
            .values(version=User.version + 1, updated_at=func.now())
            .execution_options(**NO_SYNC)
        )


async def inactive_among(session: AsyncSession, *, userids: Sequence[str]) -> set[str]:
    """Those of these users that are deactivated (SCIM active false)."""
    if not userids:
        return set()
    rows = await session.scalars(
        select(User.userid).where(
            in_list(session, User.userid, userids, String()), User.active.is_(False)
        )
    )
    return set(rows)


async def delete_user(session: AsyncSession, *, user_id: int) -> dict[int, str]:
    """Delete the locked user and its memberships; the groups it left (id: name), bumped.

    The memberships are those this statement finds, not those of an earlier
    read: under READ COMMITTED each statement sees what committed before it
    began, and the user's lock (taken before, FOR UPDATE) waited for every
    writer that had added one (adding takes KEY SHARE on the user) and keeps
    new ones out. On PostgreSQL one statement: the memberships deleted and
    returned, their groups bumped, the user deleted, in CTEs. SQLite (one
    writer at a time, no CTE may write) bumps the groups through the
    memberships, returning them, and lets the user's deletion cascade.
    """
    if dialect(session) == "postgresql":
        gone = (
            delete(Membership)
            .where(Membership.user_id == user_id)
            .returning(Membership.group_id)
            .cte("gone")
        )
        left = (
            group_repo.bumping_where(Group.id.in_(select(gone.c.group_id)))
            .returning(Group.id, Group.name)
            .cte("left_groups")
        )
        deleted = delete(User).where(User.id == user_id).cte("deleted")
        rows = (await session.execute(select(left.c.id, left.c.name).add_cte(deleted))).all()
        return {int(group_id): name for group_id, name in rows}
    of_user = select(Membership.group_id).where(Membership.user_id == user_id)
    bumped = group_repo.bumping_where(Group.id.in_(of_user)).returning(Group.id, Group.name)
    groups = {int(group_id): name for group_id, name in await session.execute(bumped)}
    await session.execute(delete(User).where(User.id == user_id).execution_options(**NO_SYNC))
    return groups


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
