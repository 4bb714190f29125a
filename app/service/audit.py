"""The audit log: one entry per change, written in the change's own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import cursors
from app.auth import Actor
from app.errors import InvalidCursor
from app.repository import audit as audit_repo
from app.service.common import retried


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    # SQLite keeps no time zone; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    resource: str,
    before: Any = None,
    after: Any = None,
) -> None:
    """Write the entry; the caller's transaction commits it with the change, or neither."""
    await audit_repo.append(
        session,
        at=now(),
        actor=actor.name,
        action=action,
        resource=resource,
        before=before,
        after=after,
        request_id=actor.request_id,
        server_request_id=actor.server_request_id,
        token_id=actor.token_id,
    )


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    actor: str
    action: str
    resource: str
    before: Any
    after: Any
    request_id: str | None
    server_request_id: str | None
    token_id: int | None


@dataclass(frozen=True)
class EntryPage:
    items: list[Entry]
    next_cursor: str | None


@retried
async def list_entries(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None = None,
    resource: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
) -> EntryPage:
    last = cursors.decode("audit", cursor)
    before_id = None
    if last is not None:
        # Audit cursors carry an entry id; anything else was not given out here.
        if not last.isdigit() or int(last) >= 2**63:
            raise InvalidCursor()
        before_id = int(last)
    async with session.begin():
        rows = await audit_repo.page(
            session,
            before_id=before_id,
            limit=limit + 1,
            resource=resource,
            actor=actor,
            since=as_utc(since) if since is not None else None,
        )
    shown = [
        Entry(
            r.id,
            as_utc(r.at),
            r.actor,
            r.action,
            r.resource,
            r.before,
            r.after,
            r.request_id,
            r.server_request_id,
            r.token_id,
        )
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return EntryPage(shown, cursors.encode("audit", str(shown[-1].id)) if more else None)
