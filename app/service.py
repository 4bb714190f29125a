"""Use cases: one function each, one transaction each.

Every function takes the session explicitly and opens its own transaction,
which commits only when the function returns; any error rolls all of it back.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import repository as repo
from app.errors import (
    GroupExists,
    GroupHasNoMembers,
    GroupNotFound,
    InvalidName,
    UnknownGroups,
    UnknownUsers,
    UserExists,
    UseridMismatch,
    UserNotFound,
)
from app.names import is_valid_name
from app.schemas import UserRecord, UserRecordIn


def _record(user: repo.UserRow, groups: Sequence[str]) -> UserRecord:
    return UserRecord(
        first_name=user.first_name,
        last_name=user.last_name,
        userid=user.userid,
        groups=list(groups),
    )


def _check_userid(userid: str, record: UserRecordIn) -> None:
    if record.userid is not None and record.userid != userid:
        raise UseridMismatch(userid, record.userid)


async def _group_ids(session: AsyncSession, names: Sequence[str]) -> list[int]:
    found = await repo.find_groups(session, names=names)
    unknown = sorted(set(names) - found.keys())
    if unknown:
        raise UnknownGroups(unknown, names)
    return [found[name] for name in names]


# Users


async def get_user(session: AsyncSession, *, userid: str) -> UserRecord:
    # A name that breaks the rule cannot exist: no need to ask the database.
    if not is_valid_name(userid):
        raise UserNotFound(userid)
    async with session.begin():
        found = await repo.get_user_with_groups(session, userid=userid)
    if found is None:
        raise UserNotFound(userid)
    return _record(*found)


async def create_user(session: AsyncSession, *, userid: str, record: UserRecordIn) -> UserRecord:
    if not is_valid_name(userid):
        raise InvalidName("userid", userid)
    _check_userid(userid, record)
    async with session.begin():
        group_ids = await _group_ids(session, record.groups)
        try:
            # The unique key decides, not a prior check: no race between two POSTs.
            user_id = await repo.insert_user(
                session, userid=userid, first_name=record.first_name, last_name=record.last_name
            )
        except IntegrityError:
            raise UserExists(userid) from None
        await repo.set_user_groups(session, user_id=user_id, group_ids=group_ids)
    return UserRecord(
        first_name=record.first_name,
        last_name=record.last_name,
        userid=userid,
        groups=sorted(record.groups),
    )


async def replace_user(session: AsyncSession, *, userid: str, record: UserRecordIn) -> UserRecord:
    if not is_valid_name(userid):
        raise UserNotFound(userid)
    _check_userid(userid, record)
    async with session.begin():
        user = await repo.lock_user(session, userid=userid)
        if user is None:
            raise UserNotFound(userid)
        group_ids = await _group_ids(session, record.groups)
        await repo.update_user(
            session, user_id=user.id, first_name=record.first_name, last_name=record.last_name
        )
        await repo.set_user_groups(session, user_id=user.id, group_ids=group_ids)
    return UserRecord(
        first_name=record.first_name,
        last_name=record.last_name,
        userid=userid,
        groups=sorted(record.groups),
    )


async def delete_user(session: AsyncSession, *, userid: str) -> None:
    if not is_valid_name(userid):
        raise UserNotFound(userid)
    async with session.begin():
        if not await repo.delete_user(session, userid=userid):
            raise UserNotFound(userid)


# Groups


async def get_group_members(session: AsyncSession, *, name: str) -> list[str]:
    if not is_valid_name(name):
        raise GroupNotFound(name)
    async with session.begin():
        members = await repo.group_members(session, name=name)
        if members:
            return members
        # Only an empty answer costs a second statement, to say which 404 it is.
        if await repo.group_exists(session, name=name):
            raise GroupHasNoMembers(name)
    raise GroupNotFound(name)


async def create_group(session: AsyncSession, *, name: str) -> list[str]:
    if not is_valid_name(name):
        raise InvalidName("name", name)
    async with session.begin():
        try:
            # The unique key decides, not a prior check: no race between two POSTs.
            await repo.insert_group(session, name=name)
        except IntegrityError:
            raise GroupExists(name) from None
    return []


async def replace_group_members(
    session: AsyncSession, *, name: str, userids: Sequence[str]
) -> list[str]:
    if not is_valid_name(name):
        raise GroupNotFound(name)
    async with session.begin():
        group = await repo.lock_group(session, name=name)
        if group is None:
            raise GroupNotFound(name)
        found = await repo.find_users(session, userids=userids)
        unknown = sorted(set(userids) - found.keys())
        if unknown:
            raise UnknownUsers(unknown, userids)
        await repo.set_group_members(
            session, group_id=group.id, user_ids=[found[userid] for userid in userids]
        )
        await repo.touch_group(session, group_id=group.id)
    return sorted(userids)


async def delete_group(session: AsyncSession, *, name: str) -> None:
    if not is_valid_name(name):
        raise GroupNotFound(name)
    async with session.begin():
        if not await repo.delete_group(session, name=name):
            raise GroupNotFound(name)
