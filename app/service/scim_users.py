"""Use cases of SCIM users: the contract's record and the SCIM attributes beside it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Actor
from app.errors import SearchTimedOut, UserExists, UserNotFound
from app.names import is_valid_name
from app.preconditions import IfMatch, etag
from app.predicates import Predicate
from app.reads.statement import StatementTimedOut, time_limit
from app.repository import groups as group_repo
from app.repository import memberships
from app.repository import scim as scim_repo
from app.repository import users as user_repo
from app.repository.scim import EmailRow, ScimUserRow
from app.service import events
from app.service.audit import record as audit
from app.service.common import retried, transaction
from app.service.member_lists import hold_user, lock_late
from app.settings import DEFAULT_SEARCH_TIMEOUT_MS

# A user's email is what its row holds.
ScimEmail = EmailRow


@dataclass(frozen=True)
class ScimUser:
    """What a SCIM client sets of a user."""

    userid: str
    first_name: str
    last_name: str
    active: bool = True
    external_id: str | None = None
    display_name: str | None = None
    emails: tuple[ScimEmail, ...] = ()


@dataclass(frozen=True)
class ScimUserView:
    """A user as SCIM shows it."""

    user: ScimUser
    etag: str
    created: datetime
    last_modified: datetime
    # (name, displayName) of its groups, by name
    groups: list[tuple[str, str]] = field(default_factory=list)


def _state(row: ScimUserRow, emails: list[EmailRow]) -> ScimUser:
    return ScimUser(
        userid=row.userid,
        first_name=row.first_name,
        last_name=row.last_name,
        active=bool(row.active),
        external_id=row.external_id,
        display_name=row.display_name,
        emails=tuple(emails),
    )


async def _views(session: AsyncSession, rows: list[ScimUserRow]) -> list[ScimUserView]:
    ids = [row.id for row in rows]
    emails = await scim_repo.emails_of(session, user_ids=ids)
    groups = await scim_repo.groups_of(session, user_ids=ids)
    return [
        ScimUserView(
            _state(row, emails.get(row.id, [])),
            etag(row.id, row.version),
            row.created_at,
            row.updated_at,
            groups.get(row.id, []),
        )
        for row in rows
    ]


def _audited(user: ScimUser) -> dict[str, Any]:
    return asdict(user)


def _stored(user: ScimUser) -> dict[str, Any]:
    """What of the user its users row stores, besides the userid (emails have rows of their own)."""
    return {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "active": user.active,
        "external_id": user.external_id,
        "display_name": user.display_name,
    }


# What a SCIM change can change of a user, as user.updated names it in `changed`.
_CHANGEABLE = ("first_name", "last_name", "active", "external_id", "display_name", "emails")


def _record(view: ScimUserView) -> dict[str, Any]:
    """The user's record as GET /users/{userid} shows it: no groups while deactivated."""
    user = view.user
    return {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "userid": user.userid,
        "groups": sorted(name for name, _ in view.groups) if user.active else [],
    }


@retried
async def get_user(session: AsyncSession, *, userid: str) -> ScimUserView:
    if not is_valid_name(userid):
        raise UserNotFound(userid)
    async with session.begin():
        row = await scim_repo.user(session, userid=userid)
        if row is None:
            raise UserNotFound(userid)
        return (await _views(session, [row]))[0]


@retried
async def list_users(
    session: AsyncSession,
    *,
    where: Predicate | None,
    offset: int,
    limit: int,
    timeout_ms: int = DEFAULT_SEARCH_TIMEOUT_MS,
) -> tuple[int, list[ScimUserView]]:
    """The number of users matching, and a page of them in userid order.

    A filter can scan the users (`co`, `ew`, ...): a filtered listing is
    stopped by the database after `timeout_ms`, as a search is (SearchTimedOut).
    """
    try:
        async with session.begin():
            limited = (
                time_limit(session, timeout_ms=timeout_ms) if where is not None else nullcontext()
            )
            async with limited:
                total = await scim_repo.count_users(session, where=where)
                rows = await scim_repo.users(session, where=where, offset=offset, limit=limit)
                return total, await _views(session, rows)
    except StatementTimedOut as exc:
        raise SearchTimedOut(timeout_ms) from exc


@retried
async def create_user(session: AsyncSession, *, actor: Actor, user: ScimUser) -> ScimUserView:
    async with transaction(session):
        try:
            # The unique key decides, not a prior check: no race between two POSTs.
            user_id = await user_repo.insert_user(session, userid=user.userid, **_stored(user))
        except IntegrityError:
            raise UserExists(user.userid) from None
        await scim_repo.set_emails(session, user_id=user_id, emails=user.emails)
        await audit(
            session,
            actor=actor,
            action="scim.user.create",
            resource=f"users/{user.userid}",
            after=_audited(user),
        )
        row = await scim_repo.user(session, userid=user.userid)
        assert row is not None
        view = (await _views(session, [row]))[0]
        events.emit(session, actor=actor, type="user.created", data=_record(view))
        return view


@retried
async def change_user(
    session: AsyncSession,
    *,
    actor: Actor,
    userid: str,
    change: Callable[[ScimUser], ScimUser],
    action: str,
    if_match: IfMatch | None = None,
) -> ScimUserView:
    """Apply `change` to the user as it is now (PUT and PATCH): all of it, or nothing.

    `change` raises to refuse; the userid cannot change. Groups are not the
    user's to change here (SCIM's User.groups is read-only), but `active`
    decides whether the core API shows the user in them: the member lists
    of its groups, as seen, change with it, and so do their versions.
    """
    if not is_valid_name(userid):
        raise UserNotFound(userid)
    async with transaction(session):
        seen = await scim_repo.user(session, userid=userid)
        # Its groups before the user (lock_in_order): their versions change
        # should `active` change.
        first = None if seen is None else await memberships.group_ids_of(session, user_id=seen.id)
        row = await hold_user(
            session,
            userid=userid,
            if_match=if_match,
            groups_first=first,
            lock=lambda: scim_repo.user(session, userid=userid, lock=True),
        )
        before = (await _views(session, [row]))[0]
        wanted = change(before.user)
        if wanted == before.user:
            # Nothing changes: the version (and every client's ETag) stays.
            return before
        await user_repo.update_user(session, user_id=row.id, **_stored(wanted))
        if wanted.emails != before.user.emails:
            await scim_repo.set_emails(session, user_id=row.id, emails=wanted.emails)
        if wanted.active != before.user.active:
            groups = await memberships.group_ids_of(session, user_id=row.id)
            await lock_late(session, groups=groups, locked=first or ())
            await group_repo.bump(session, ids=sorted(groups))
        await audit(
            session,
            actor=actor,
            action=action,
            resource=f"users/{userid}",
            before=_audited(before.user),
            after=_audited(wanted),
        )
        changed = await scim_repo.user(session, userid=userid)
        assert changed is not None
        after = (await _views(session, [changed]))[0]
        fields = [f for f in _CHANGEABLE if getattr(before.user, f) != getattr(wanted, f)]
        if wanted.active != before.user.active:
            # The feed shows memberships as the core API does: they go with
            # the deactivation and come back with the reactivation.
            events.memberships(
                session,
                actor=actor,
                added=wanted.active,
                pairs=[(name, userid) for name, _ in after.groups],
                decided=True,
            )
        events.emit(
            session, actor=actor, type="user.updated", data=_record(after) | {"changed": fields}
        )
        return after
