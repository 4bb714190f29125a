"""The one writer of member lists, and the one lock order every writer follows.

The target of a write is held here too (hold_user, hold_group): locked in
that order, then its If-Match checked, as the contract orders the errors
(docs/contract.md): the target's existence, its precondition, and only
then what the write refers to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import GroupNotFound, UnknownUsers, UserNotFound
from app.preconditions import IfMatch
from app.repository import groups as group_repo
from app.repository import memberships
from app.repository import users as user_repo
from app.service.common import check


class Versioned(Protocol):
    """A row whose ETag is made of its id and version."""

    @property
    def id(self) -> int: ...

    @property
    def version(self) -> int: ...


R = TypeVar("R", bound=Versioned)


async def lock_in_order(
    session: AsyncSession, *, groups: Collection[int] = (), users: Collection[int] = ()
) -> None:
    """Lock these rows against other writers until the transaction ends.

    The lock order of every writer: groups before users, and within each
    kind by ascending id. A writer locks all the groups it needs before its
    first user, and never a group after a user; a writer of one group
    locks that group (by name, as it reads it) before calling this, and a
    writer of one user calls this for its groups before locking that user.
    Two writers that take their locks in the same order can wait for each
    other but never in a cycle, so PostgreSQL has no deadlock to break and
    neither of them is aborted. The one exception is rare and safe: a user's
    writer that finds, once it holds its user, a group it had not seen (a
    membership changed in between) locks it late; should that close a
    cycle, PostgreSQL aborts one writer and `retried` runs it again. SQLite
    needs no row locks: BEGIN IMMEDIATE lets one writer in at a time.
    """
    await group_repo.lock_ids(session, ids=sorted(set(groups)))
    await user_repo.lock_ids(session, ids=sorted(set(users)))


async def lock_late(
    session: AsyncSession, *, groups: Collection[int], locked: Collection[int]
) -> None:
    """Lock those of `groups` not `locked` before: the rare exception of lock_in_order.

    A user's writer found them only once it held its user: a membership
    changed between its first look and its lock.
    """
    await lock_in_order(session, groups=set(groups) - set(locked))


async def hold_user(
    session: AsyncSession,
    *,
    userid: str,
    if_match: IfMatch | None,
    groups_first: Collection[int] | None,
    lock: Callable[[], Awaitable[R | None]],
) -> R:
    """The user `lock` locks, once `groups_first` are locked; its If-Match checked.

    `groups_first`: the groups a first look found whose member lists the
    write may change (None: the first look found no such user). Groups a
    single statement found and locked already are not named again.
    """
    if groups_first is None:
        raise UserNotFound(userid)
    await lock_in_order(session, groups=groups_first)
    return _checked(await lock(), UserNotFound(userid), f"User {userid!r}", if_match)


async def hold_group(
    *, name: str, if_match: IfMatch | None, lock: Callable[[], Awaitable[R | None]]
) -> R:
    """The group `lock` locks (the first lock of a writer of one group); its If-Match checked."""
    return _checked(await lock(), GroupNotFound(name), f"Group {name!r}", if_match)


def _checked(row: R | None, missing: Exception, what: str, if_match: IfMatch | None) -> R:
    if row is None:
        raise missing
    check(if_match, what, row.id, row.version)
    return row


@dataclass(frozen=True)
class MemberChange:
    """What writing a member list did; userids, each list sorted."""

    before: list[str]
    added: list[str]
    removed: list[str]

    @property
    def after(self) -> list[str]:
        gone = set(self.removed)
        return sorted([userid for userid in self.before if userid not in gone] + self.added)


async def write_members(
    session: AsyncSession, *, group_id: int, userids: Collection[str]
) -> MemberChange:
    """Make exactly these users the group's members, and bump what changed.

    The caller has locked the group. Every user named must exist (else
    UnknownUsers, and nothing is written). The group's version is bumped
    (its member list was written), and so is each user whose groups change.
    """
    found = await user_repo.find_many(session, userids=list(userids))
    unknown = sorted(set(userids) - found.keys())
    if unknown:
        raise UnknownUsers(unknown, list(userids))
    wanted = set(found.values())
    current = await memberships.members_of(session, group_id=group_id)
    added, removed = sorted(wanted - current.keys()), sorted(current.keys() - wanted)
    await lock_in_order(session, users=added + removed)
    await memberships.remove_for_group(session, group_id=group_id, user_ids=removed)
    await memberships.add_for_group(session, group_id=group_id, user_ids=added)
    await user_repo.bump(session, ids=added + removed)
    await group_repo.bump(session, ids=[group_id])
    by_id = {user_id: userid for userid, user_id in found.items()}
    return MemberChange(
        before=sorted(current.values()),
        added=sorted(by_id[user_id] for user_id in added),
        removed=sorted(current[user_id] for user_id in removed),
    )
