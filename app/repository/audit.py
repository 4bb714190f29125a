"""Queries on the audit log.

An entry is kept in the session until its transaction commits, and written
then with the change's events (app.repository.events.write_at_commit): on
PostgreSQL in the same statement, one round trip for both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.models import AuditEntry
from app.repository.common import value_converter


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
    """Keep the entry to be written as the session's transaction commits, or never."""
    session.info.setdefault(PENDING, []).append(
        {
            "at": at,
            "actor": actor,
            "action": action,
            "resource": resource,
            "before": before,
            "after": after,
            "request_id": request_id,
            "server_request_id": server_request_id,
            "token_id": token_id,
        }
    )


# Session.info key of the entries waiting for the commit.
PENDING = "grouped_users_pending_audit"


def take_pending(session: Session) -> list[dict[str, Any]]:
    """The entries kept so far, no longer kept."""
    pending: list[dict[str, Any]] = session.info.pop(PENDING, None) or []
    return pending


_TABLE = cast(Table, AuditEntry.__table__)
_INSERT = insert(_TABLE)
# The columns `append` keeps, in its order.
_KEYS = (
    "at",
    "actor",
    "action",
    "resource",
    "before",
    "after",
    "request_id",
    "server_request_id",
    "token_id",
)


@functools.lru_cache(maxsize=8)
def _driver_insert(dialect: Dialect) -> tuple[str, tuple[tuple[str, Callable[[Any], Any]], ...]]:
    """The INSERT as the driver takes it, and each parameter's conversion, in order."""
    compiled = _INSERT.compile(dialect=dialect, column_keys=list(_KEYS))
    if compiled.positiontup is None:
        raise RuntimeError(f"{dialect.name}: the audit's INSERT takes named parameters")
    return compiled.string, tuple(
        (name, value_converter(_TABLE.c[name], dialect)) for name in compiled.positiontup
    )


def driver_rows(dialect: Dialect, rows: list[dict[str, Any]]) -> tuple[str, list[tuple[Any, ...]]]:
    """The INSERT of these entries (their columns as `append` keeps them), as the driver takes it.

    Each value made by its column's type as SQLAlchemy would make it: this
    runs in every write's group-commit turn on SQLite, and SQLAlchemy's
    per-statement work for a Core executemany was more than the insert
    itself.
    """
    sql, columns = _driver_insert(dialect)
    return sql, [tuple(convert(row[name]) for name, convert in columns) for row in rows]


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
