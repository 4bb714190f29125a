"""The read of every authenticated request: the token with a digest."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Token
from app.reads.statement import SingleRead
from app.repository.tokens import COLUMNS, TokenRow

_BY_DIGEST = SingleRead(
    lambda _: select(*COLUMNS).where(Token.digest == bindparam("digest")), point=True
)


async def by_digest(session: AsyncSession, *, digest: str) -> TokenRow | None:
    """The token with this digest (a unique key), or None."""
    rows = await _BY_DIGEST.rows(session, {"digest": digest})
    return TokenRow(*rows[0]) if rows else None
