"""Use cases of groups and their member lists."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Actor
from app.errors import GroupExists, GroupHasNoMembers, GroupNotFound, InvalidName
from app.names import is_valid_name
from app.preconditions import IfMatch, etag
from app.reads import groups as group_reads
from app.repository import groups as group_repo
from app.repository import memberships
from app.repository import users as user_repo
from app.service import events
from app.service.audit import record as audit
from app.service.common import Tagged, retried, transaction
from app.service.member_lists import hold_group, lock_in_order, write_members


@retried
async def get_members(session: AsyncSession, *, name: str) -> Tagged[str]:
    """The group's members' sorted userids, as the JSON array the answer carries."""
    if not is_valid_name(name):
        raise GroupNotFound(name)
    found = await group_reads.get_with_members(session, name=name)
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
    async with transaction(session):
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
    async with transaction(session):
        group = await hold_group(
            name=name, if_match=if_match, lock=lambda: group_repo.lock(session, name=name)
        )
        change = await write_members(session, group_id=group.id, userids=userids)
        await audit(
            session,
            actor=actor,
            action="group.replace_members",
            resource=f"groups/{name}",
            before=change.before,
            after=change.after,
        )
        events.memberships(
            session, actor=actor, added=False, pairs=[(name, u) for u in change.removed]
        )
        events.memberships(
            session, actor=actor, added=True, pairs=[(name, u) for u in change.added]
        )
        # Deactivated users stay stored members, but GET does not show them.
        hidden = await user_repo.inactive_among(session, userids=change.after)
    shown = [userid for userid in change.after if userid not in hidden]
    return Tagged(shown, etag(group.id, group.version + 1))


@retried
async def delete_group(
    session: AsyncSession, *, actor: Actor, name: str, if_match: IfMatch | None = None
) -> None:
    if not is_valid_name(name):
        raise GroupNotFound(name)
    async with transaction(session):
        group = await hold_group(
            name=name,
            if_match=if_match,
            lock=lambda: group_repo.lock(session, name=name, for_delete=True),
        )
        members = await memberships.members_of(session, group_id=group.id)
        # The memberships go by cascade; the records of their users change.
        await lock_in_order(session, users=members.keys())
        await user_repo.bump(session, ids=sorted(members))
        await group_repo.delete_group(session, group_id=group.id)
        await audit(
            session,
            actor=actor,
            action="group.delete",
            resource=f"groups/{name}",
            before=sorted(members.values()),
        )
        # The cascade's memberships go first, then the group.
        gone = [(name, userid) for userid in sorted(members.values())]
        events.memberships(session, actor=actor, added=False, pairs=gone)
        events.emit(session, actor=actor, type="group.deleted", data={"name": name})
