"""What the use cases share: tagged results, retries, checks."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, Generic, NamedTuple, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Busy, PreconditionFailed, UnknownGroups
from app.preconditions import IfMatch, etag
from app.repository import groups as group_repo

T = TypeVar("T")
P = ParamSpec("P")

# PostgreSQL gives up one of two transactions that wait on each other
# (deadlock_detected) or that cannot be serialized; run it again.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 5


class Tagged(NamedTuple, Generic[T]):
    """A result and the entity tag of the resource it shows.

    A named tuple: made on every read, and a frozen dataclass's __init__
    costs several times a tuple's (#7).
    """

    value: T
    etag: str


def retried(
    use_case: Callable[Concatenate[AsyncSession, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[AsyncSession, P], Coroutine[Any, Any, T]]:
    """Run the use case again when the database aborted it for a conflict."""

    @functools.wraps(use_case)
    async def run(session: AsyncSession, /, *args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await use_case(session, *args, **kwargs)
            except DBAPIError as exc:
                sqlstate = getattr(exc.orig, "sqlstate", None)
                if sqlstate in _RETRY_SQLSTATES and attempt < ATTEMPTS:
                    await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311
                    continue
                if sqlstate in _RETRY_SQLSTATES or _sqlite_busy(exc):
                    raise Busy() from exc
                raise
        raise AssertionError("unreachable")

    return run


def _sqlite_busy(exc: DBAPIError) -> bool:
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def check(if_match: IfMatch | None, what: str, row_id: int, version: int) -> None:
    current = etag(row_id, version)
    if if_match is not None and not if_match.holds(current):
        raise PreconditionFailed(what, current)


async def group_ids(session: AsyncSession, names: Sequence[str]) -> set[int]:
    """The ids of these groups, which must all exist (422 listing those that do not)."""
    found = await group_repo.find_many(session, names=names)
    unknown = sorted(set(names) - found.keys())
    if unknown:
        raise UnknownGroups(unknown, names)
    return set(found.values())
