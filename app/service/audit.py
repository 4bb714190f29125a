"""The audit log: one entry per change, written in the change's own transaction."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import cursors
from app.auth import Actor
from app.clock import as_utc, now
from app.errors import InvalidCursor
from app.repository import audit as audit_repo
from app.repository.audit import AuditRow
from app.service.common import retried


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


# An entry as the log shows it: the stored row, its time an aware UTC datetime.
Entry = AuditRow


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
    shown = [replace(r, at=as_utc(r.at)) for r in rows[:limit]]
    more = len(rows) > limit
    return EntryPage(shown, cursors.encode("audit", str(shown[-1].id)) if more else None)
