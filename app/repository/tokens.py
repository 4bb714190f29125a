"""Queries on API tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Token
from app.repository.common import NO_SYNC, SingleRead


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    role: str
    digest: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


_COLUMNS = (
    Token.id,
    Token.name,
    Token.role,
    Token.digest,
    Token.created_at,
    Token.last_used_at,
    Token.expires_at,
)


_BY_DIGEST = SingleRead(lambda _: select(*_COLUMNS).where(Token.digest == bindparam("digest")))


async def by_digest(session: AsyncSession, *, digest: str) -> TokenRow | None:
    """The token with this digest: every authenticated request asks, so SQLite
    answers it on the fast path (app.fastread)."""
    rows = await _BY_DIGEST.rows(session, {"digest": digest})
    return TokenRow(*_sqlite_times(rows[0])) if rows else None


def _sqlite_times(row: Sequence[Any]) -> list[Any]:
    # The sqlite3 module hands back SQLAlchemy's stored text, not datetimes.
    return [
        datetime.fromisoformat(value) if index >= 4 and isinstance(value, str) else value
        for index, value in enumerate(row)
    ]


async def by_name(session: AsyncSession, *, name: str) -> TokenRow | None:
    row = (await session.execute(select(*_COLUMNS).where(Token.name == name))).one_or_none()
    return None if row is None else TokenRow(*row)


async def all_tokens(session: AsyncSession) -> list[TokenRow]:
    return [TokenRow(*row) for row in await session.execute(select(*_COLUMNS).order_by(Token.name))]


async def insert_token(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    digest: str,
    created_at: datetime,
    expires_at: datetime | None,
) -> int:
    """Insert a token, and its id; a duplicate name raises IntegrityError from the unique key."""
    result = await session.execute(
        insert(Token)
        .values(name=name, role=role, digest=digest, created_at=created_at, expires_at=expires_at)
        .returning(Token.id)
    )
    return int(result.scalar_one())


async def delete_token(session: AsyncSession, *, name: str) -> bool:
    result = await session.execute(
        delete(Token).where(Token.name == name).returning(Token.id).execution_options(**NO_SYNC)
    )
    return result.first() is not None


async def mark_used(session: AsyncSession, *, token_id: int, at: datetime) -> None:
    await session.execute(
        update(Token)
        .where(Token.id == token_id)
        .values(last_used_at=at)
        .execution_options(**NO_SYNC)
    )
