"""The change feed: what each change emits, and reading it back in commit order."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import cursors
from app.auth import Actor
from app.clock import as_utc, now
from app.errors import CursorExpired, InvalidCursor
from app.repository import events as event_repo
from app.repository.events import Bell, Pending
from app.repository.events import FeedEvent as FeedEvent  # what the doors show
from app.service.common import retried, transaction

TYPES = (
    "user.created",
    "user.updated",
    "user.deleted",
    "group.created",
    "group.deleted",
    "membership.added",
    "membership.removed",
)
_CURSOR_KIND = "events"
# Events purged per statement, so that no delete holds the table for long.
_PURGE_BATCH = 10_000


def emit(session: AsyncSession, *, actor: Actor, type: str, data: Any) -> None:
    """Queue an event; it is written as the transaction commits, or never."""
    event_repo.queue(session, [Pending(type, data, actor.name, actor.request_id)])


def memberships(
    session: AsyncSession,
    *,
    actor: Actor,
    added: bool,
    pairs: Iterable[tuple[str, str]],
    decided: bool = False,
) -> None:
    """One membership.added (or .removed) per (group, userid), in the order given.

    The feed shows memberships as the core API does, and an inactive user's
    are hidden there: so each of these events is dropped at commit if its
    user is inactive then, whichever door wrote it (a membership.added
    downstream would grant access). `decided`: the writer knows these are
    shown, and they always go: the (de)activation itself, which shows or
    hides them all, or a deleted user's, already left out when inactive.
    """
    type_ = "membership.added" if added else "membership.removed"
    event_repo.queue(
        session,
        [
            Pending(
                type_,
                {"group": group, "userid": userid},
                actor.name,
                actor.request_id,
                unless_inactive=None if decided else userid,
            )
            for group, userid in pairs
        ],
    )


def cursor_of(position: int) -> str:
    return cursors.encode(_CURSOR_KIND, str(position))


def position_of(cursor: str) -> int:
    last = cursors.decode(_CURSOR_KIND, cursor)
    if last is None or not last.isdigit() or int(last) >= 2**63:
        raise InvalidCursor()
    return int(last)


@dataclass(frozen=True)
class FeedPage:
    items: list[FeedEvent]
    next_cursor: str


@retried
async def current_cursor(session: AsyncSession) -> str:
    """The cursor of "now": following it gives every event committed from here on."""
    async with session.begin():
        return cursor_of((await event_repo.counter(session)).position)


@retried
async def read_page(
    session: AsyncSession, *, after: str | None, limit: int, types: list[str] | None = None
) -> FeedPage:
    """The events after the cursor, in commit order; from the oldest kept without one."""
    wanted = position_of(after) if after is not None else None
    async with session.begin():
        # The counter first: every position up to it has committed, so a page
        # of a filtered feed that comes short may move the cursor that far.
        counter = await event_repo.counter(session)
        start = counter.purged_through if wanted is None else wanted
        if start < counter.purged_through:
            raise CursorExpired(cursor_of(counter.position))
        if start > counter.position:
            # Not a cursor of this feed (another database, or made up).
            raise InvalidCursor()
        rows = await event_repo.page(session, after=start, limit=limit, types=types)
    items = [
        FeedEvent(r.id, r.type, as_utc(r.occurred_at), r.actor, r.request_id, r.data) for r in rows
    ]
    last = rows[-1].position if rows else start
    if types and len(rows) < limit:
        last = max(last, counter.position)
    return FeedPage(items, cursor_of(last))


async def follow(
    read: Callable[[], Awaitable[FeedPage]], *, bell: Bell | None, wait: float, poll: float
) -> FeedPage:
    """A page as soon as it has events, or the empty one after `wait` seconds.

    The bell rings when an event commits (in this process, or announced by
    the database); `poll` seconds is the longest gap between two reads
    anyway, for what no bell announces (SQLite writers in other processes).
    """
    deadline = time.monotonic() + wait
    while True:
        ticket = bell.ticket() if bell is not None else None
        page = await read()
        left = deadline - time.monotonic()
        if page.items or left <= 0:
            return page
        pause = min(left, poll)
        if ticket is None:
            await asyncio.sleep(pause)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ticket.wait(), pause)


async def purge(session: AsyncSession, *, retention: timedelta, batch: int = _PURGE_BATCH) -> int:
    """Drop the events older than the retention, `batch` positions at a time; how many went.

    For each batch the horizon moves first, in a short transaction of its
    own: cursors behind it expire at once, and the deletes that follow
    never hold the counter row that every writer needs. The deletes take
    every event up to the horizon, those a purge stopped before deleting
    included (a purge stopped between the two leaves them below the horizon).
    """
    moment = now() - retention
    gone = 0
    while True:
        async with transaction(session):
            horizon = (await event_repo.counter(session)).purged_through
            through = await event_repo.last_before(
                session, moment=moment, after=horizon, within=batch
            )
            if through is not None:
                await event_repo.mark_purged(session, through=through)
        gone += await _delete_through(
            session, position=horizon if through is None else through, batch=batch
        )
        if through is None:
            return gone


async def _delete_through(session: AsyncSession, *, position: int, batch: int) -> int:
    """Delete the events at or below `position`, `batch` a transaction; how many went."""
    gone = 0
    while True:
        async with transaction(session):
            count = await event_repo.delete_through(session, position=position, limit=batch)
        gone += count
        if count < batch:
            return gone
