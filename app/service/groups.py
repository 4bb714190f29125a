"""Use cases of groups and their member lists."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Actor
from app.errors import GroupExists, GroupHasNoMembers, GroupNotFound, InvalidName, UnknownUsers
from app.names import is_valid_name
from app.preconditions import IfMatch, etag
from app.repository import groups as group_repo
from app.repository import memberships
from app.repository import users as user_repo
from app.service import events
from app.service.audit import record as audit
from app.service.common import Tagged, check, retried


@retried
async def get_members(session: AsyncSession, *, name: str) -> Tagged[str]:
    """The group's members' sorted userids, as the JSON array the answer carries."""
    if not is_valid_name(name):
        raise GroupNotFound(name)
    found = await group_repo.get_with_members(session, name=name)
    if found is None:
        raise GroupNotFound(name)
    group, members = found
    if members == "[]":
        raise GroupHasNoMembers(name)
    return Tagged(members, etag(group.id, group.version))


@retried
async def create_group(session: AsyncSession, *, actor: Actor, name: str) -> Tagged[list[str]]:
    if not is_valid_name(name):
        raise InvalidName("name", name)
    async with session.begin():
        try:
            # The unique key decides, not a prior check: no race between two POSTs.
            group = await group_repo.insert_group(session, name=name)
        except IntegrityError:
            raise GroupExists(name) from None
        await audit(
            session, actor=actor, action="group.create", resource=f"groups/{name}", after=[]
        )
        events.emit(session, actor=actor, type="group.created", data={"name": name})
    return Tagged([], etag(group.id, group.version))


@retried
async def replace_members(
    session: AsyncSession,
    *,
    actor: Actor,
    name: str,
    userids: Sequence[str],
    if_match: IfMatch | None = None,
) -> Tagged[list[str]]:
    if not is_valid_name(name):
        raise GroupNotFound(name)
    async with session.begin():
        group = await group_repo.lock(session, name=name)
        if group is None:
            raise GroupNotFound(name)
        check(if_match, f"Group {name!r}", group.id, group.version)
        found = await user_repo.find_many(session, userids=userids)
        unknown = sorted(set(userids) - found.keys())
        if unknown:
            raise UnknownUsers(unknown, userids)
        wanted = set(found.values())
        current = await memberships.user_ids_of(session, group_id=group.id)
        added, removed = wanted - current, current - wanted
        # The group is locked first, then the users whose records change.
        await user_repo.lock_ids(session, ids=sorted(added | removed))
        before = await memberships.member_userids(session, group_id=group.id)
        await memberships.remove_for_group(session, group_id=group.id, user_ids=sorted(removed))
        await memberships.add_for_group(session, group_id=group.id, user_ids=sorted(added))
        await user_repo.bump(session, ids=sorted(added | removed))
        await group_repo.bump(session, ids=[group.id])
        await audit(
            session,
            actor=actor,
            action="group.replace_members",
            resource=f"groups/{name}",
            before=before,
            after=sorted(userids),
        )
        was, now = set(before), set(userids)
        events.memberships(
            session, actor=actor, added=False, pairs=[(name, u) for u in sorted(was - now)]
        )
        events.memberships(
            session, actor=actor, added=True, pairs=[(name, u) for u in sorted(now - was)]
        )
    return Tagged(sorted(userids), etag(group.id, group.version + 1))


@retried
async def delete_group(
    session: AsyncSession, *, actor: Actor, name: str, if_match: IfMatch | None = None
) -> None:
    if not is_valid_name(name):
        raise GroupNotFound(name)
    async with session.begin():
        group = await group_repo.lock(session, name=name, for_delete=True)
        if group is None:
            raise GroupNotFound(name)
        check(if_match, f"Group {name!r}", group.id, group.version)
        members = sorted(await memberships.user_ids_of(session, group_id=group.id))
        before = await memberships.member_userids(session, group_id=group.id)
        # The memberships go by cascade; the records of their users change.
        await user_repo.lock_ids(session, ids=members)
        await user_repo.bump(session, ids=members)
        await group_repo.delete_group(session, group_id=group.id)
        await audit(
            session, actor=actor, action="group.delete", resource=f"groups/{name}", before=before
        )
        # The cascade's memberships go first, then the group.
        events.memberships(session, actor=actor, added=False, pairs=[(name, u) for u in before])
        events.emit(session, actor=actor, type="group.deleted", data={"name": name})
