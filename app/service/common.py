"""What the use cases share: tagged results, retries, checks."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, NamedTuple, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Busy, PreconditionFailed, UnknownGroups
from app.group_commit import COMMITTER, Committer
from app.preconditions import IfMatch, etag
from app.repository import groups as group_repo
from app.repository.events import RING_LATER, WRITE_LATER

T = TypeVar("T")
P = ParamSpec("P")

# PostgreSQL gives up one of two transactions that wait on each other
# (deadlock_detected) or that cannot be serialized; run it again.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 5


class Tagged(NamedTuple, Generic[T]):
    """A result and the entity tag of the resource it shows.

    A named tuple: made on every read, and a frozen dataclass's __init__
    costs several times a tuple's.
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


@dataclass(frozen=True)
class FoundGroups:
    """The groups a request names: those that exist, and those that do not.

    A reference to a group that does not exist is the last error a write
    reports, after the target's existence and its preconditions (the order
    of errors in docs/contract.md), so finding them and refusing them are
    two steps.
    """

    names: Sequence[str]
    ids: set[int]
    unknown: list[str]

    def require_all(self) -> set[int]:
        """The ids, when every group exists; else 422 listing those that do not."""
        if self.unknown:
            raise UnknownGroups(self.unknown, self.names)
        return self.ids


async def find_groups(
    session: AsyncSession, names: Sequence[str], *, changing: bool = False
) -> FoundGroups:
    """These groups, their keys shared until commit (group_repo.find_many).

    `changing`: their member lists will change, so they are locked in the
    lock order as they are found (app.service.member_lists.lock_in_order).
    """
    found = await group_repo.find_many(session, names=names, changing=changing)
    return FoundGroups(names, set(found.values()), sorted(set(names) - found.keys()))


@contextlib.asynccontextmanager
async def transaction(session: AsyncSession) -> AsyncIterator[None]:
    """The transaction of one write use case, in place of `session.begin()`.

    On SQLite (a session of Database.writer carrying a Committer) the use
    case waits its turn, runs inside a SAVEPOINT of the open batch, and
    returns only once the batch's COMMIT made it durable (app.group_commit).
    Elsewhere, and for reader sessions: its own transaction, as begin().
    """
    committer: Committer | None = session.info.get(COMMITTER)
    if committer is None:
        async with session.begin():
            yield
        return
    sync = session.sync_session
    engine = sync.bind
    async with committer.turn() as batch:
        # The session joins the batch's transaction through a savepoint
        # (join_transaction_mode="create_savepoint", app.db): its commit
        # releases it, its rollback returns to it, the batch goes on.
        sync.bind = batch.connection
        session.info[RING_LATER] = batch.mark_published
        # Its audit entries and events, written by the batch before COMMIT.
        writes: list[tuple[str, list[Any]]] = []
        session.info[WRITE_LATER] = writes
        try:
            async with session.begin():
                yield
            batch.write_later(writes)
        finally:
            sync.bind = engine
            del session.info[RING_LATER]
            del session.info[WRITE_LATER]
    await batch.durable()
