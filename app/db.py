"""Engine and session factories for one database URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.fair_pool import FairAsyncQueuePool
from app.group_commit import COMMITTER, COMMITTER_DRIVER, Committer, WriterConnection
from app.reads.fast import FAST_READER, FastReader
from app.reads.prepared import PREPARED_READER, PreparedReader
from app.reads.statement import OWN_READER, SHARED_SESSION
from app.repository.events import EventSession, WriterSession
from app.settings import Settings

# Read-only use cases run on an engine view carrying this option, so that on
# SQLite they take no write lock (see _begin below).
_READ_ONLY = "grouped_users_read_only"


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    # Use cases that change data: on SQLite they BEGIN IMMEDIATE.
    writer: async_sessionmaker[AsyncSession]
    # Use cases that only read.
    reader: async_sessionmaker[AsyncSession]
    # SQLite files only: single-statement reads on the event loop's thread.
    fast_reader: FastReader | None = None
    # PostgreSQL only: point lookups on asyncpg's prepared statements.
    prepared_reader: PreparedReader | None = None
    # With either reader: the one session of every point lookup.
    shared_statement_session: AsyncSession | None = None
    # SQLite files only: runs the writes of concurrent use cases in shared
    # transactions, one COMMIT for many (app.group_commit).
    committer: Committer | None = None

    def statement_reader(self) -> AsyncSession:
        """A session for a point lookup of app.reads (SingleRead with point=True).

        On the fast reader (or the prepared reader) such a read never begins
        the session's transaction (the session only carries the reader, in
        Session.info), so one session
        made at start serves all of them at once: making a session per lookup
        was about a tenth of its cost. Its autobegin is off, and a read that
        needs a transaction refuses it, so a misuse fails loudly. Elsewhere:
        a new reader session.
        """
        return self.shared_statement_session or self.reader()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        if self.fast_reader is not None:
            self.fast_reader.close()
        if self.committer is not None:
            await self.committer.close()
            self.committer.engine.dispose()
        if self.prepared_reader is not None:
            await self.prepared_reader.close()
        await self.engine.dispose()


def create_database(settings: Settings) -> Database:
    options: dict[str, Any] = {"pool_pre_ping": False}
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if path is not None or not settings.is_sqlite:
        # Requests waiting for a connection are served first come, first
        # served (app.fair_pool); an in-memory SQLite database keeps its one
        # connection.
        options["poolclass"] = FairAsyncQueuePool
    if not settings.is_sqlite:
        options |= {
            "pool_size": settings.db_pool_size - _read_pool_size(settings),
            # No overflow: an overflow connection is closed as soon as it is
            # returned to a full pool, and under load PostgreSQL then forks a
            # backend per request; that churn made GET /users/{id}'s p99 1.5 s
            # (20 kept connections: 47 ms, at twice the req/s).
            "max_overflow": 0,
            "pool_timeout": settings.db_pool_timeout,
        }
    engine = create_async_engine(settings.database_url, **options)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine.sync_engine, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    read_engine = engine.execution_options(**{_READ_ONLY: True})
    fast_reader = (
        FastReader(path, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        if path is not None and engine.dialect.name == "sqlite"
        else None
    )
    read_size = _read_pool_size(settings)
    prepared_reader = (
        PreparedReader(settings.database_url, size=read_size)
        if engine.dialect.name == "postgresql" and read_size > 0
        else None
    )
    info: dict[str, Any] = {}
    if fast_reader is not None:
        info[FAST_READER] = fast_reader
    if prepared_reader is not None:
        info[PREPARED_READER] = prepared_reader
    reader = async_sessionmaker(
        read_engine,
        expire_on_commit=False,
        autoflush=False,
        # Every read runs in an explicit session.begin() (or on the fast
        # reader): a stray statement outside one is an error, never a
        # connection left checked out (app.web.sessions.reader_session).
        autobegin=False,
        info=info,
    )
    # Not for an in-memory database: its connections share one (StaticPool).
    committer = _committer(engine, settings) if fast_reader is not None else None
    return Database(
        engine=engine,
        writer=async_sessionmaker(
            engine,
            expire_on_commit=False,
            autoflush=False,
            # Writes the audit entries and events a use case queued as its
            # transaction commits (with events off, the audit entries only).
            sync_session_class=EventSession if settings.events else WriterSession,
            # With a committer, a use case's session is bound for its turn to
            # the batch's connection, already in a transaction: it joins it
            # through a SAVEPOINT (app.service.common.transaction).
            join_transaction_mode="create_savepoint",
            info={COMMITTER: committer} if committer is not None else {},
        ),
        reader=reader,
        fast_reader=fast_reader,
        prepared_reader=prepared_reader,
        shared_statement_session=_shared(reader) if info else None,
        committer=committer,
    )


def _read_pool_size(settings: Settings) -> int:
    """PostgreSQL: the prepared reader's share of the process's db_pool_size connections.

    Half of them, so that a process keeps to its budget (several workers
    times the pool must stay under the server's max_connections); none
    with a pool of one, when point lookups go through the session too.
    """
    return 0 if settings.is_sqlite else settings.db_pool_size // 2


def _shared(reader: async_sessionmaker[AsyncSession]) -> AsyncSession:
    session = reader()
    session.info[SHARED_SESSION] = True
    session.info[OWN_READER] = reader
    return session


def _committer(engine: AsyncEngine, settings: Settings) -> Committer:
    """The group committer, on a synchronous `sqlite3` engine on the same file.

    Synchronous so that a turn's statements run without a thread hop each
    (app.group_commit); the connection is handed between threads (BEGIN and
    COMMIT run in one) but never used by two at once.
    """
    sync_engine = create_engine(
        engine.url.set(drivername=COMMITTER_DRIVER),
        connect_args={"check_same_thread": False, "factory": WriterConnection},
        pool_size=1,
        max_overflow=0,
    )
    _configure_sqlite(sync_engine, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    path = settings.sqlite_path()
    return Committer(
        sync_engine,
        batch_max=settings.sqlite_batch_max,
        batch_wait_seconds=settings.sqlite_batch_wait_ms / 1000,
        turn_file=None if path is None else path.with_name(path.name + "-writer.lock"),
    )


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us, not the driver, decide when and how a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Foreign keys are off per connection unless asked for; the cascades
        # from users and groups to memberships depend on them.
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: in WAL mode a commit is on disk before it is acknowledged, so
        # an acknowledged write survives a power cut, not only a process crash.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes can fail at once
        # with SQLITE_BUSY when another writer got in between; IMMEDIATE takes
        # the write lock up front and waits its turn (busy_timeout) instead.
        if conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
