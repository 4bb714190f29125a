"""Use cases of user records."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Actor
from app.errors import InvalidName, UserExists, UseridMismatch, UserNotFound
from app.names import is_valid_name
from app.preconditions import IfMatch, etag
from app.reads import users as user_reads
from app.repository import groups as group_repo
from app.repository import memberships
from app.repository import users as user_repo
from app.schemas import UserPatch, UserRecord, UserRecordIn
from app.service import events
from app.service.audit import record as audit
from app.service.common import Tagged, find_groups, retried, transaction
from app.service.member_lists import hold_user, lock_late


def _check_userid(userid: str, given: str | None) -> None:
    if given is not None and given != userid:
        raise UseridMismatch(userid, given)


@retried
async def get_user(session: AsyncSession, *, userid: str) -> Tagged[str]:
    """The user record as the JSON text the answer carries (groups sorted)."""
    # A name that breaks the rule cannot exist: no need to ask the database.
    if not is_valid_name(userid):
        raise UserNotFound(userid)
    found = await user_reads.get_record(session, userid=userid)
    if found is None:
        raise UserNotFound(userid)
    user_id, version, record = found
    return Tagged(record, etag(user_id, version))


@retried
async def create_user(
    session: AsyncSession, *, actor: Actor, userid: str, record: UserRecordIn
) -> Tagged[UserRecord]:
    if not is_valid_name(userid):
        raise InvalidName("userid", userid)
    _check_userid(userid, record.userid)
    async with transaction(session):
        # Their member lists change: found and locked in one statement.
        found = await find_groups(session, record.groups, changing=True)
        new_groups = sorted(found.ids)
        try:
            # The unique key decides, not a prior check: no race between two POSTs.
            # Made a member of the groups found, which are bumped, in the same step.
            user_id = await user_repo.insert_user(
                session,
                userid=userid,
                first_name=record.first_name,
                last_name=record.last_name,
                groups=new_groups,
            )
        except IntegrityError:
            raise UserExists(userid) from None
        # Only now, as the target's state comes first: unknown groups roll it back.
        found.require_all()
        stored = UserRecord(
            first_name=record.first_name,
            last_name=record.last_name,
            userid=userid,
            groups=sorted(record.groups),
        )
        await audit(
            session,
            actor=actor,
            action="user.create",
            resource=f"users/{userid}",
            after=stored.model_dump(),
        )
        events.emit(session, actor=actor, type="user.created", data=stored.model_dump())
        # Created active, and no other writer sees the user before this commits.
        events.memberships(
            session,
            actor=actor,
            added=True,
            pairs=[(name, userid) for name in stored.groups],
            decided=True,
        )
    return Tagged(stored, etag(user_id, 1))


@retried
async def update_user(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    userid: str,
    change: UserRecordIn | UserPatch,
    if_match: IfMatch | None = None,
) -> Tagged[UserRecord]:
    """PUT (the whole record: absent groups empty them) and PATCH (None keeps the current value)."""
    first_name, last_name, groups = change.first_name, change.last_name, change.groups
    if not is_valid_name(userid):
        raise UserNotFound(userid)
    _check_userid(userid, change.userid)
    async with transaction(session):
        found = None
        locked: set[int] = set()
        if groups is not None:
            found = await find_groups(session, groups)
            # The groups whose member lists change, as the memberships are now:
            # found and locked in one statement, before the user (the lock order).
            locked = await group_repo.lock_changing(session, userid=userid, wanted=found.ids)
        # The user and its memberships as they are, now that no other writer can change them.
        user, current_groups = await hold_user(
            session,
            userid=userid,
            if_match=if_match,
            groups_first=(),
            lock=lambda: user_repo.lock_with_groups(session, userid=userid),
        )
        wanted = None if found is None else found.require_all()
        current = set(current_groups)
        current_names = sorted(current_groups.values())
        before = UserRecord(
            first_name=user.first_name,
            last_name=user.last_name,
            userid=userid,
            groups=current_names,
        )
        if wanted is not None:
            added, removed = wanted - current, current - wanted
            await lock_late(session, groups=added | removed, locked=locked)
            await memberships.change_for_user(
                session, user_id=user.id, added=sorted(added), removed=sorted(removed)
            )
        first_name = first_name if first_name is not None else user.first_name
        last_name = last_name if last_name is not None else user.last_name
        names = sorted(groups) if groups is not None else current_names
        record = UserRecord(first_name=first_name, last_name=last_name, userid=userid, groups=names)
        if record == before:
            # Nothing changes: the version (and so every client's ETag) stays,
            # and there is no change to audit.
            return Tagged(_as_shown(record, user.active), etag(user.id, user.version))
        version = await user_repo.update_user(
            session, user_id=user.id, first_name=first_name, last_name=last_name
        )
        await audit(
            session,
            actor=actor,
            action=action,
            resource=f"users/{userid}",
            before=before.model_dump(),
            after=record.model_dump(),
        )
        _emit_changes(session, actor, before, record, active=user.active)
    return Tagged(_as_shown(record, user.active), etag(user.id, version))


def _as_shown(record: UserRecord, active: bool) -> UserRecord:
    """The record as GET shows it under the same ETag: no groups while deactivated.

    The write changed the stored memberships all the same; they show again
    when the identity provider reactivates the user.
    """
    return record if active else record.model_copy(update={"groups": []})


@retried
async def delete_user(
    session: AsyncSession, *, actor: Actor, userid: str, if_match: IfMatch | None = None
) -> None:
    if not is_valid_name(userid):
        raise UserNotFound(userid)
    async with transaction(session):
        # Its groups' member lists change: they come first in the lock order,
        # found and locked here in one statement.
        await group_repo.lock_changing(session, userid=userid)
        user = await hold_user(
            session,
            userid=userid,
            if_match=if_match,
            groups_first=(),
            lock=lambda: user_repo.lock(session, userid=userid, for_delete=True),
        )
        # Its memberships go with it, read as they are deleted (not before: a
        # membership committed while the user's lock waited is among them);
        # a group joined after the groups' lock is locked late, by its bump.
        left = await user_repo.delete_user(session, user_id=user.id)
        stored = UserRecord(
            first_name=user.first_name,
            last_name=user.last_name,
            userid=userid,
            groups=sorted(left.values()),
        )
        # The feed's view: an inactive user's memberships were never shown, so
        # their going is no news (and the row is gone before the commit could
        # tell its events to drop them).
        gone = _as_shown(stored, user.active)
        await audit(
            session,
            actor=actor,
            action="user.delete",
            resource=f"users/{userid}",
            before=stored.model_dump(),
        )
        # Its memberships go first, then the user.
        events.memberships(
            session,
            actor=actor,
            added=False,
            pairs=[(name, userid) for name in gone.groups],
            decided=True,
        )
        events.emit(session, actor=actor, type="user.deleted", data=gone.model_dump())


def _emit_changes(
    session: AsyncSession, actor: Actor, before: UserRecord, after: UserRecord, *, active: bool
) -> None:
    """The membership events of a change, then user.updated if the names changed.

    The record in user.updated is as GET shows it. `active` was read with the
    user's row locked, so it holds until the commit: an inactive user's
    membership events are not shown (events.memberships), and an active
    user's need no check at commit.
    """
    userid = after.userid
    was, now = set(before.groups), set(after.groups)
    if active:
        for added, groups in ((False, was - now), (True, now - was)):
            pairs = [(g, userid) for g in sorted(groups)]
            events.memberships(session, actor=actor, added=added, pairs=pairs, decided=True)
    changed = [f for f in ("first_name", "last_name") if getattr(before, f) != getattr(after, f)]
    if changed:
        data = _as_shown(after, active).model_dump() | {"changed": changed}
        events.emit(session, actor=actor, type="user.updated", data=data)
