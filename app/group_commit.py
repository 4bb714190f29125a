"""Group commit on SQLite: the writes of many requests, one COMMIT (one fsync).

With `synchronous=FULL` every COMMIT waits for an fsync, and a transaction
per request paid that wait, and SQLite's lock hand-over, per request. Here one writer
connection per process holds a transaction (a *batch*) open while requests
take turns on it, each inside its own SAVEPOINT: a request that fails rolls
back to its savepoint alone and answers its own error. When no request is
waiting for a turn, or at a size or age bound, the batch COMMITs and only
then are its requests answered; if the COMMIT fails, all of them fail and
nothing of them stays.

Turns are strictly one at a time (savepoints on one connection are a stack,
two requests must never interleave), so within a batch the requests run as
if each had the database to itself, as before: If-Match checks and unique
keys see every earlier turn, and the event counter (app.repository.events)
hands out positions in turn order, which is commit order. Only the audit
log and the feed's rows of earlier turns are not there yet: the batch
writes them at its end (below), so a turn that reads the counter (a
webhook created takes it as its cursor) sees it as the last COMMIT left
it; what the batch adds after it commits in the same instant.

The writer connection is a plain (synchronous) `sqlite3` one: inside a turn
the use case's statements run on the event loop's thread, each a few
microseconds, instead of a hop to a driver thread each. The hops were the
cost: every one let the loop serve other requests before the turn went on,
so a turn that holds every other writer of the process lasted milliseconds.
What may wait (BEGIN IMMEDIATE for another process's write lock, COMMIT for
its fsync) runs in a thread, the turn lock keeping the connection to one
user at a time. COMMIT's thread first writes the turns' audit entries and
change events, which each turn hands to the batch (Batch.write_later):
one statement per table and batch, instead of two per turn. Across
processes the committers wait for each other on a file lock (see
Committer._take_turn_and_begin).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from app.errors import Busy, NotCommitted
from app.repository.events import ring_all
from app.turn_lock import TurnLock

log = logging.getLogger(__name__)

# The key of Session.info under which a writer session carries its Committer.
COMMITTER = "grouped_users_committer"


class _Cursor(sqlite3.Cursor):
    async def _async_soft_close(self) -> None:
        """What an AsyncSession asks of a driver cursor after a Core statement.

        An async driver's cursor closes here while its rows stay buffered;
        the session's rows are buffered already (prebuffer_rows) and this
        cursor closes with its result, so there is nothing to do.
        """


class WriterConnection(sqlite3.Connection):
    """The committer's sqlite3 connection: its cursors can serve an AsyncSession."""

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)


class CommitterDialect(SQLiteDialect_pysqlite):
    """SQLite through `sqlite3`, its savepoints sent as they are.

    SQLAlchemy names each savepoint anew (sa_savepoint_1, _2, ...), and its
    default dialect compiles every SAVEPOINT and RELEASE as a new statement,
    under a new cache key: two compilations per turn, in the turn, while
    every other writer of every process waits. The names are SQLAlchemy's
    own, never a caller's, so the SQL needs no compiling.
    """

    # A dialect subclass must say so, or SQLAlchemy caches none of its statements.
    supports_statement_cache = True

    def do_savepoint(self, connection: Connection, name: str) -> None:
        connection.exec_driver_sql(f"SAVEPOINT {name}")

    def do_rollback_to_savepoint(self, connection: Connection, name: str) -> None:
        connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {name}")

    def do_release_savepoint(self, connection: Connection, name: str) -> None:
        connection.exec_driver_sql(f"RELEASE SAVEPOINT {name}")


# The committer's engine asks for it by its URL's driver name (app.db).
COMMITTER_DRIVER = "sqlite+groupcommit"
registry.register(COMMITTER_DRIVER.replace("+", "."), __name__, CommitterDialect.__name__)


@dataclass(eq=False)
class Batch:
    """One open transaction of the writer connection and the turns it holds."""

    connection: Connection
    opened: float
    outcome: asyncio.Future[None]
    turns: int = 0
    # Some turn queued change events: the long-polls are woken after COMMIT.
    published: bool = False
    # The turns' audit entries and events as (statement, rows), by statement,
    # in turn order: COMMIT's thread writes them, then commits.
    deferred: dict[str, list[Any]] = field(default_factory=dict)

    def mark_published(self) -> None:
        self.published = True

    def write_later(self, writes: list[tuple[str, list[Any]]]) -> None:
        """Rows of a turn that succeeded, to be written before the COMMIT, after earlier turns'."""
        for sql, rows in writes:
            self.deferred.setdefault(sql, []).extend(rows)

    async def durable(self) -> None:
        """Return once the batch's COMMIT succeeded; NotCommitted if it failed.

        Past its turn a write is in the batch: it commits or fails with it,
        whatever becomes of the request. A cancellation while waiting (the
        request's time limit, say) waits on for that outcome, so that the
        answer tells what happened rather than "nothing changed" about a
        write that committed. Shielded: the request must not cancel the
        outcome that the other requests of the batch wait for.
        """
        try:
            await asyncio.shield(self.outcome)
        except asyncio.CancelledError:
            await asyncio.shield(self.outcome)


@dataclass(eq=False)
class Stats:
    """Batches committed (or failed to), the turns they held, the largest one."""

    batches: int = 0
    turns: int = 0
    largest: int = 0
    failed: int = 0
    # Batches that could not BEGIN (the write lock stayed taken).
    failed_begins: int = 0


@dataclass(eq=False)
class Committer:
    """The writer connection of one process and the batch open on it."""

    # A synchronous engine on the same SQLite file (app.db).
    engine: Engine
    batch_max: int
    batch_wait_seconds: float
    # Beside the database: the committers of all processes take turns on it.
    turn_file: Path | None = None
    stats: Stats = field(default_factory=Stats)
    # Turns queued behind a turn that does not suspend run right after it (app.turn_lock).
    _lock: TurnLock = field(default_factory=TurnLock)
    _connection: Connection | None = None
    _batch: Batch | None = None
    _turn_fd: int | None = None
    _committing: set[asyncio.Task[None]] = field(default_factory=set)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[Batch]:
        """This request's turn on the open batch (opening one if none is).

        The caller runs its whole transaction, as a savepoint, inside the
        turn, then awaits `Batch.durable()` outside it.
        """
        failed_begins = self.stats.failed_begins
        await self._lock.acquire()
        if self.stats.failed_begins != failed_begins:
            # A batch could not begin while this request waited (another
            # process held the write lock past the busy timeout): answer as
            # that request did, rather than wait the whole timeout again.
            self._lock.release()
            raise Busy()
        batch: Batch | None = None
        try:
            batch = self._batch or await self._open()
            yield batch
            batch.turns += 1
        finally:
            # No await from here on: the turn ends either by handing the lock
            # to the COMMIT (which releases it) or by releasing it now.
            if batch is not None and self._should_close(batch):
                task = asyncio.get_running_loop().create_task(self._commit(batch))
                self._committing.add(task)
                task.add_done_callback(self._committing.discard)
            else:
                self._lock.release()

    def _should_close(self, batch: Batch) -> bool:
        age = asyncio.get_running_loop().time() - batch.opened
        full = batch.turns >= self.batch_max or age >= self.batch_wait_seconds
        return self._lock.waiting == 0 or full

    async def _open(self) -> Batch:
        loop = asyncio.get_running_loop()
        try:
            if self._connection is None:
                self._connection = await asyncio.to_thread(self.engine.connect)
            await self._begin(self._connection)
        except Exception:
            self.stats.failed_begins += 1
            await self._drop_connection()
            raise
        except BaseException:
            # Given up while BEGIN's thread runs: that thread's file lock and
            # connection are undone when it ends (_begin), not under it now.
            if self._connection is not None:
                await self._drop_connection()
            raise
        outcome: asyncio.Future[None] = loop.create_future()
        # Retrieved even when no request waits on it (all of them failed).
        outcome.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._batch = Batch(connection=self._connection, opened=loop.time(), outcome=outcome)
        return self._batch

    async def _begin(self, connection: Connection) -> None:
        """Take the turn file, then BEGIN IMMEDIATE, both in one thread.

        One hop, not two: each hop back to a loop that is serving reads
        waits for the loop's pass, and all that time the turn file keeps
        the other processes' writers out. If the request is given up
        meanwhile, the thread runs to its end and what it took is undone
        then (the connection closed, which rolls back; the file let go),
        never while it runs.
        """
        if self.turn_file is not None and self._turn_fd is None:
            self._turn_fd = os.open(self.turn_file, os.O_RDWR | os.O_CREAT, 0o600)
        beginning = asyncio.get_running_loop().run_in_executor(
            None, self._take_turn_and_begin, connection
        )
        try:
            await asyncio.shield(beginning)
        except asyncio.CancelledError:
            self._connection = None
            beginning.add_done_callback(lambda _: self._undo_begin(connection))
            raise

    def _take_turn_and_begin(self, connection: Connection) -> None:
        """In a thread: wait for the other processes' committers, then for SQLite's write lock.

        The file lock, not SQLite, is what the committers wait on: SQLite's
        busy handler polls the write lock with sleeps of up to 100 ms, and a
        committer that opens its next batch as soon as the last one
        committed nearly always won the race against a sleeping one: the
        other process's writes waited seconds. A blocked flock() is woken by
        the kernel when the lock is let go. Only the committers take it;
        anything else that writes (an import, the CLI) still meets them at
        SQLite's lock, which alone keeps the data safe.
        """
        fd = self._turn_fd
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            # BEGIN IMMEDIATE (app.db): across processes the write lock decides.
            connection.begin()
        except BaseException:
            self._let_go_turn_file()
            raise

    def _undo_begin(self, connection: Connection) -> None:
        self._let_go_turn_file()
        _discard(connection)

    def _let_go_turn_file(self) -> None:
        if self._turn_fd is not None:
            fcntl.flock(self._turn_fd, fcntl.LOCK_UN)

    async def _commit(self, batch: Batch) -> None:
        self.stats.batches += 1
        self.stats.turns += batch.turns
        self.stats.largest = max(self.stats.largest, batch.turns)
        try:
            await asyncio.to_thread(self._commit_and_let_go, batch)
        except Exception:
            log.exception("group commit of %d writes failed; none of them happened", batch.turns)
            self.stats.failed += 1
            batch.outcome.set_exception(NotCommitted())
            await self._drop_connection()
        else:
            batch.outcome.set_result(None)
            if batch.published:
                ring_all()
        finally:
            if not batch.outcome.done():
                batch.outcome.set_exception(NotCommitted())
            # The file was let go in the COMMIT's thread.
            self._batch = None
            self._lock.release()

    def _commit_and_let_go(self, batch: Batch) -> None:
        """In a thread: the turns' audit entries and events, COMMIT, then let the others in.

        The rows are written here, one statement for each table and batch,
        not one each turn: a turn holds every writer of every process, and
        the statements' own work in SQLAlchemy and SQLite was a third of a
        POST's turn; here SQLite works without the GIL, beside the loop.
        The file is let go at once, not a hop later: the loop may be busy
        serving reads for a while.
        """
        try:
            for sql, rows in batch.deferred.items():
                batch.connection.exec_driver_sql(sql, rows)
            batch.connection.commit()
        finally:
            self._let_go_turn_file()

    async def _drop_connection(self) -> None:
        """Forget the writer connection, rolling back what it held.

        Invalidated, not returned to the pool: after a failed COMMIT the pool
        would take the transaction for ended and hand the driver connection,
        still inside it, to the next batch. A closed SQLite connection rolls
        back what it held. The next batch connects anew.
        """
        self._let_go_turn_file()
        connection, self._connection = self._connection, None
        if connection is not None:
            _discard(connection)

    async def close(self) -> None:
        """Wait for a COMMIT in flight, then close the writer connection."""
        async with self._lock:
            await self._drop_connection()
            if self._turn_fd is not None:
                os.close(self._turn_fd)
                self._turn_fd = None


def _discard(connection: Connection) -> None:
    """Close the writer connection for good: invalidated, rolling back what it held."""
    with contextlib.suppress(Exception):
        connection.invalidate()
    with contextlib.suppress(Exception):
        connection.close()
