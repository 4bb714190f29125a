"""Queries on the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuditEntry


@dataclass(frozen=True)
class AuditRow:
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


_COLUMNS = (
    AuditEntry.id,
    AuditEntry.at,
    AuditEntry.actor,
    AuditEntry.action,
    AuditEntry.resource,
    AuditEntry.before,
    AuditEntry.after,
    AuditEntry.request_id,
    AuditEntry.server_request_id,
    AuditEntry.token_id,
)


async def append(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    resource: str,
    before: Any,
    after: Any,
    request_id: str | None,
    server_request_id: str | None = None,
    token_id: int | None = None,
) -> None:
    await session.execute(
        insert(AuditEntry).values(
            at=at,
            actor=actor,
            action=action,
            resource=resource,
            before=before,
            after=after,
            request_id=request_id,
            server_request_id=server_request_id,
            token_id=token_id,
        )
    )


async def page(
    session: AsyncSession,
    *,
    before_id: int | None,
    limit: int,
    resource: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
) -> list[AuditRow]:
    """Up to `limit` entries older than `before_id`, newest first (keyset on id)."""
    query = select(*_COLUMNS).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if resource is not None:
        query = query.where(AuditEntry.resource == resource)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return [AuditRow(*row) for row in await session.execute(query)]
