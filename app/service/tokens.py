"""Use cases of API tokens: create, list, revoke, and authenticate a request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import (
    DURATION_RULE,
    MAX_DURATION_SECONDS,
    Actor,
    Role,
    digest,
    is_reserved_name,
    new_secret,
    same_digest,
)
from app.clock import as_utc, now
from app.errors import InvalidToken, TokenExists, TokenNotFound, Unauthenticated
from app.names import is_valid_name
from app.reads import tokens as token_reads
from app.repository import tokens as token_repo
from app.repository.tokens import TokenRow
from app.service.audit import record
from app.service.common import retried, transaction

# last_used_at is written at most this often per token: a write per request
# would turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown of a token: everything but its secret."""

    # Never given to another token: the audit log tells tokens apart by it.
    id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None

    def public(self) -> dict[str, int | str | None]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        role=row.role,
        created_at=as_utc(row.created_at),
        last_used_at=as_utc(row.last_used_at) if row.last_used_at else None,
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
    )


@retried
async def create_token(
    session: AsyncSession,
    *,
    actor: Actor,
    name: str,
    role: str,
    expires_in: timedelta | None = None,
) -> tuple[TokenInfo, str]:
    """A new token and its secret, which is shown this once and never stored."""
    if is_reserved_name(name):
        # The audit log names these actors; a token of that name would pass for them.
        raise InvalidToken(
            "name", f"{name!r} is reserved for actors that are not tokens ('anonymous', 'cli:...')"
        )
    if not is_valid_name(name):
        raise InvalidToken("name", f"{name!r} must follow the name rule (a-z, 0-9, . _ - @)")
    if role not in Role.__members__:
        raise InvalidToken("role", f"{role!r} is not one of reader, writer, admin")
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidToken("expires_in", "must be a positive duration")
    if expires_in is not None and expires_in > timedelta(seconds=MAX_DURATION_SECONDS):
        raise InvalidToken("expires_in", DURATION_RULE)
    secret = new_secret()
    created = now()
    expires = created + expires_in if expires_in is not None else None
    async with transaction(session):
        try:
            token_id = await token_repo.insert_token(
                session,
                name=name,
                role=role,
                digest=digest(secret),
                created_at=created,
                expires_at=expires,
            )
        except IntegrityError:
            raise TokenExists(name) from None
        info = TokenInfo(token_id, name, role, created, None, expires)
        await record(
            session,
            actor=actor,
            action="token.create",
            resource=f"tokens/{name}",
            after=info.public(),
        )
    return info, secret


@retried
async def list_tokens(session: AsyncSession) -> list[TokenInfo]:
    async with session.begin():
        return [_info(row) for row in await token_repo.all_tokens(session)]


@retried
async def revoke_token(session: AsyncSession, *, actor: Actor, name: str) -> None:
    async with transaction(session):
        row = await token_repo.by_name(session, name=name) if is_valid_name(name) else None
        if row is None or not await token_repo.delete_token(session, name=name):
            raise TokenNotFound(name)
        await record(
            session,
            actor=actor,
            action="token.revoke",
            resource=f"tokens/{name}",
            before=_info(row).public(),
        )


@dataclass(frozen=True)
class Authenticated:
    actor: Actor
    token_id: int
    # last_used_at is older than its resolution: write it (mark_used).
    stale: bool


async def authenticate(
    session: AsyncSession,
    *,
    secret: str,
    request_id: str | None,
    server_request_id: str | None = None,
) -> Authenticated:
    """Who a bearer secret stands for; Unauthenticated for any token not valid now.

    Reads only: a revoked token is gone, an expired one is past its time.
    """
    presented = digest(secret)
    row = await token_reads.by_digest(session, digest=presented)
    moment = now()
    if row is None or not same_digest(row.digest, presented):
        raise Unauthenticated()
    if row.expires_at is not None and as_utc(row.expires_at) <= moment:
        raise Unauthenticated()
    last = as_utc(row.last_used_at) if row.last_used_at else None
    return Authenticated(
        actor=Actor(
            name=row.name,
            role=Role.named(row.role),
            request_id=request_id,
            server_request_id=server_request_id,
            token_id=row.id,
        ),
        token_id=row.id,
        stale=last is None or moment - last >= LAST_USED_RESOLUTION,
    )


@retried
async def mark_used(session: AsyncSession, *, token_id: int) -> None:
    async with transaction(session):
        await token_repo.mark_used(session, token_id=token_id, at=now())
