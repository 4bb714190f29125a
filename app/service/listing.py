"""Use cases of the collections: keyset pages of users and of groups (app.reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app import cursors
from app.errors import InvalidSearch, SearchTimedOut
from app.names import is_valid_name, is_valid_person_name
from app.reads import groups as group_reads
from app.reads import users as user_reads
from app.reads.statement import StatementTimedOut
from app.schemas import GroupSummary
from app.service.common import retried
from app.settings import DEFAULT_SEARCH_TIMEOUT_MS

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@retried
async def list_users(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None = None,
    group: str | None = None,
    q: str | None = None,
    search_timeout_ms: int = DEFAULT_SEARCH_TIMEOUT_MS,
) -> Page[str]:
    """A page of user records, each the JSON text the answer carries (groups sorted).

    A search that runs over `search_timeout_ms` is stopped: SearchTimedOut.
    """
    after = cursors.decode("users", cursor)
    if q and not is_valid_person_name(q):
        raise InvalidSearch()
    if group is not None and not is_valid_name(group):
        # No group can have that name, so no user is in it.
        return Page([], None)
    # One row more than asked tells whether there is a next page.
    try:
        rows = await user_reads.page(
            session,
            after=after,
            limit=limit + 1,
            group=group,
            search=q,
            search_timeout_ms=search_timeout_ms,
        )
    except StatementTimedOut as exc:
        raise SearchTimedOut(search_timeout_ms) from exc
    shown = rows[:limit]
    more = len(rows) > limit
    return Page(
        [record for _, record in shown], cursors.encode("users", shown[-1][0]) if more else None
    )


@retried
async def list_groups(
    session: AsyncSession, *, limit: int, cursor: str | None = None
) -> Page[GroupSummary]:
    after = cursors.decode("groups", cursor)
    rows = await group_reads.page(session, after=after, limit=limit + 1)
    shown = rows[:limit]
    items = [GroupSummary(name=name, member_count=count) for name, count in shown]
    more = len(rows) > limit
    return Page(items, cursors.encode("groups", shown[-1][0]) if more else None)
