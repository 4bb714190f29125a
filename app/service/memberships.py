"""Use cases of one membership: add or remove one user of one group."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Actor
from app.errors import GroupNotFound, NotAMember, UserNotFound
from app.names import is_valid_name
from app.repository import groups as group_repo
from app.repository import memberships
from app.repository import users as user_repo
from app.repository.common import GroupRow, UserRow
from app.service import events
from app.service.audit import record as audit
from app.service.common import retried, transaction


async def _lock_pair(session: AsyncSession, name: str, userid: str) -> tuple[GroupRow, UserRow]:
    # The group before the user: app.service.member_lists.lock_in_order's order.
    group = await group_repo.lock(session, name=name) if is_valid_name(name) else None
    if group is None:
        raise GroupNotFound(name)
    user = await user_repo.lock(session, userid=userid) if is_valid_name(userid) else None
    if user is None:
        raise UserNotFound(userid)
    return group, user


@retried
async def add_member(session: AsyncSession, *, actor: Actor, name: str, userid: str) -> None:
    """Make the user a member; nothing changes (nor is audited) when it is one already."""
    async with transaction(session):
        group, user = await _lock_pair(session, name, userid)
        if await memberships.add_one(session, group_id=group.id, user_id=user.id):
            await _changed(
                session, actor=actor, rows=(group, user), pair=(name, userid), added=True
            )


@retried
async def remove_member(session: AsyncSession, *, actor: Actor, name: str, userid: str) -> None:
    async with transaction(session):
        group, user = await _lock_pair(session, name, userid)
        if not await memberships.remove(session, group_id=group.id, user_id=user.id):
            raise NotAMember(name, userid)
        await _changed(session, actor=actor, rows=(group, user), pair=(name, userid), added=False)


async def _changed(
    session: AsyncSession,
    *,
    actor: Actor,
    rows: tuple[GroupRow, UserRow],
    pair: tuple[str, str],
    added: bool,
) -> None:
    """What one membership added or removed changes besides itself: both versions, the
    audit log (the pair after an add, before a removal), the change events."""
    group, user = rows
    name, userid = pair
    await group_repo.bump(session, ids=[group.id])
    await user_repo.bump(session, ids=[user.id])
    membership = {"group": name, "userid": userid}
    await audit(
        session,
        actor=actor,
        action="membership.add" if added else "membership.remove",
        resource=f"groups/{name}/members/{userid}",
        before=None if added else membership,
        after=membership if added else None,
    )
    events.memberships(session, actor=actor, added=added, pairs=[pair])
