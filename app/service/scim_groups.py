"""Use cases of SCIM groups: displayName, externalId and members, one transaction each."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Actor
from app.errors import Busy, DisplayNameTaken, GroupNotFound
from app.names import NAME_LENGTH, ascii_lower, is_valid_name
from app.preconditions import IfMatch, etag
from app.predicates import Predicate
from app.repository import scim as scim_repo
from app.repository.scim import ScimGroupRow
from app.service import events
from app.service.audit import record as audit
from app.service.common import retried, transaction
from app.service.member_lists import hold_group, write_members

_OUTSIDE_NAME_RULE = re.compile(r"[^a-z0-9._@-]+")
_DASHES = re.compile(r"-{2,}")


@dataclass(frozen=True)
class ScimGroup:
    """What a SCIM client sets of a group; members are sorted userids."""

    display_name: str
    external_id: str | None = None
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScimGroupView:
    name: str
    display_name: str
    external_id: str | None
    etag: str
    created: datetime
    last_modified: datetime
    # (userid, the user's displayName or "first last") by userid; None when
    # not asked for, or when there are more than the answer may carry.
    members: list[tuple[str, str]] | None


def derive_name(display_name: str) -> str:
    """The id of a group made over SCIM: its displayName within the name rule.

    Lower-cased, every run of other characters a '-', trimmed to 64
    characters, starting with a letter or digit ("Sales - EMEA" -> "sales-emea").
    """
    name = _DASHES.sub("-", _OUTSIDE_NAME_RULE.sub("-", ascii_lower(display_name)))
    name = name.lstrip("._@-")[:NAME_LENGTH].rstrip("-")
    return name if is_valid_name(name) else "group"


def _free_name(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    for number in range(2, len(taken) + 3):
        suffix = f"-{number}"
        candidate = base[: NAME_LENGTH - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise AssertionError("unreachable")


async def _views(
    session: AsyncSession, rows: list[ScimGroupRow], members_limit: int | None
) -> list[ScimGroupView]:
    """The groups as SCIM shows them, with at most `members_limit` members in all.

    None: members not asked for. Groups take their members, in order, while
    the answer's total stays within the limit; a group whose members would
    pass it comes without them (SCIM lets a server leave out a large
    `members`). Counting first reads the memberships' key only, so a group
    of 300,000 members costs no row per member here.
    """
    if members_limit is None:
        return [_view(row, None) for row in rows]
    counts = await scim_repo.member_counts(session, group_ids=[row.id for row in rows])
    budget, shown = members_limit, set()
    for row in rows:
        count = counts.get(row.id, 0)
        if count <= budget:
            budget -= count
            shown.add(row.id)
    listed = {row.id for row in rows if row.id in shown and counts.get(row.id)}
    members = await scim_repo.members_of(session, group_ids=sorted(listed))
    return [_view(row, members.get(row.id, []) if row.id in shown else None) for row in rows]


def _view(row: ScimGroupRow, members: list[tuple[str, str]] | None) -> ScimGroupView:
    return ScimGroupView(
        row.name,
        row.display_name,
        row.external_id,
        etag(row.id, row.version),
        row.created_at,
        row.updated_at,
        members,
    )


def _audited(group: ScimGroup) -> dict[str, Any]:
    return asdict(group)


@retried
async def get_group(
    session: AsyncSession, *, name: str, members_limit: int | None
) -> ScimGroupView:
    """The group; its members when asked for (`members_limit` not None) and no more than that."""
    if not is_valid_name(name):
        raise GroupNotFound(name)
    async with session.begin():
        row = await scim_repo.group(session, name=name)
        if row is None:
            raise GroupNotFound(name)
        return (await _views(session, [row], members_limit))[0]


@retried
async def list_groups(
    session: AsyncSession,
    *,
    where: Predicate | None,
    offset: int,
    limit: int,
    members_limit: int | None,
) -> tuple[int, list[ScimGroupView]]:
    async with session.begin():
        total = await scim_repo.count_groups(session, where=where)
        rows = await scim_repo.groups(session, where=where, offset=offset, limit=limit)
        return total, await _views(session, rows, members_limit)


@retried
async def create_group(
    session: AsyncSession, *, actor: Actor, group: ScimGroup, members_limit: int
) -> ScimGroupView:
    async with transaction(session):
        if await scim_repo.display_key_taken(session, display_name=group.display_name):
            raise DisplayNameTaken(group.display_name)
        base = derive_name(group.display_name)
        name = _free_name(base, await scim_repo.names_like(session, base=base))
        try:
            group_id = await scim_repo.insert_group(
                session, name=name, display_name=group.display_name, external_id=group.external_id
            )
        except IntegrityError as exc:
            # Another transaction took the displayName or the derived name
            # since we looked (PostgreSQL; SQLite lets one writer in at a
            # time). The unique index on display_key decides the first: 409.
            # The second: the client's retry picks a free name.
            if "display_key" in str(exc.orig):
                raise DisplayNameTaken(group.display_name) from None
            raise Busy() from None
        if group.members:
            await write_members(session, group_id=group_id, userids=group.members)
        await audit(
            session,
            actor=actor,
            action="scim.group.create",
            resource=f"groups/{name}",
            after=_audited(group),
        )
        data = {"name": name, "display_name": group.display_name}
        events.emit(session, actor=actor, type="group.created", data=data)
        members = sorted(set(group.members))
        events.memberships(session, actor=actor, added=True, pairs=[(name, u) for u in members])
        row = await scim_repo.group(session, name=name)
        assert row is not None
        return (await _views(session, [row], members_limit))[0]


@retried
async def change_group(
    session: AsyncSession,
    *,
    actor: Actor,
    name: str,
    change: Callable[[ScimGroup], ScimGroup],
    action: str,
    members_limit: int,
    if_match: IfMatch | None = None,
) -> ScimGroupView:
    """Apply `change` to the group as it is now (PUT and PATCH): all of it, or nothing."""
    if not is_valid_name(name):
        raise GroupNotFound(name)
    async with transaction(session):
        row = await hold_group(
            name=name,
            if_match=if_match,
            lock=lambda: scim_repo.group(session, name=name, lock=True),
        )
        members = (await scim_repo.members_of(session, group_ids=[row.id])).get(row.id, [])
        before = ScimGroup(row.display_name, row.external_id, tuple(u for u, _ in members))
        wanted = change(before)
        wanted = ScimGroup(
            wanted.display_name, wanted.external_id, tuple(sorted(set(wanted.members)))
        )
        if wanted == before:
            return (await _views(session, [row], members_limit))[0]
        if wanted.display_name.casefold() != before.display_name.casefold() and (
            await scim_repo.display_key_taken(session, display_name=wanted.display_name, but=row.id)
        ):
            raise DisplayNameTaken(wanted.display_name)
        if wanted.members != before.members:
            await write_members(session, group_id=row.id, userids=wanted.members)
        if (wanted.display_name, wanted.external_id) != (before.display_name, before.external_id):
            try:
                await scim_repo.update_group(
                    session,
                    group_id=row.id,
                    display_name=wanted.display_name,
                    external_id=wanted.external_id,
                )
            except IntegrityError:
                # Another transaction took the displayName since we looked
                # (PostgreSQL): the unique index decides, as on create.
                raise DisplayNameTaken(wanted.display_name) from None
        await audit(
            session,
            actor=actor,
            action=action,
            resource=f"groups/{name}",
            before=_audited(before),
            after=_audited(wanted),
        )
        was, now = set(before.members), set(wanted.members)
        events.memberships(
            session, actor=actor, added=False, pairs=[(name, u) for u in sorted(was - now)]
        )
        events.memberships(
            session, actor=actor, added=True, pairs=[(name, u) for u in sorted(now - was)]
        )
        changed = await scim_repo.group(session, name=name)
        assert changed is not None
        return (await _views(session, [changed], members_limit))[0]
