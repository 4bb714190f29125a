"""Queries on API tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Token
from app.repository.common import NO_SYNC


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    role: str
    digest: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


COLUMNS = (
    Token.id,
    Token.name,
    Token.role,
    Token.digest,
    Token.created_at,
    Token.last_used_at,
    Token.expires_at,
)


async def by_name(session: AsyncSession, *, name: str) -> TokenRow | None:
    row = (await session.execute(select(*COLUMNS).where(Token.name == name))).one_or_none()
    return None if row is None else TokenRow(*row)


async def all_tokens(session: AsyncSession) -> list[TokenRow]:
    return [TokenRow(*row) for row in await session.execute(select(*COLUMNS).order_by(Token.name))]


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
