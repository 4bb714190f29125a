"""The change feed's table: events are queued during a transaction and written as it commits.

Why at commit, under the counter row's lock: a sequence would hand out
positions in the order transactions *start* writing events, not in the
order they commit, and a reader that saw position 12 before 11 committed
would skip 11 forever. Here every writing transaction, as its very last
statement, increments the one `event_counter` row and takes its positions
from it. The row lock is held until COMMIT, and a second writer's UPDATE
waits for it and then reads the committed value (PostgreSQL's READ
COMMITTED re-reads the row it waited for); a rolled-back writer hands its
positions to the next. So positions are given in commit order, without
gaps, and when position N is visible every position below it is (PostgreSQL
makes a transaction visible before it releases its locks). On PostgreSQL
the last step is COMMIT's own: a deferred trigger on the outbox row the
transaction wrote (alembic 0009), so that the lock is held for the commit
alone (see _write_postgresql). On SQLite one writer holds the database at a
time: each event is inserted at the counter's next position, and a trigger
advances the counter with it (alembic 0010), one statement for both; in a
group commit the batch inserts its turns' events, in turn order, just
before its COMMIT (WRITE_LATER).

The writes are the last statements of the transaction, so they are made
cheap: statements built once at import (only their parameters change), run
on the session's connection rather than through the ORM, and no check of the
users' state when the writer has already decided which events are shown.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    and_,
    delete,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from app.models import Event, EventCounter, User
from app.repository import audit
from app.repository.common import in_list, value_converter

# The PostgreSQL channel a committed event is announced on (LISTEN/NOTIFY),
# by the trigger of alembic 0009, which names it too.
CHANNEL = "grouped_users_events"
_PENDING = "grouped_users_pending_events"
_PUBLISHED = "grouped_users_published_events"
# Set by a group commit (app.group_commit) for the turn of one request: its
# commit only releases a savepoint, so the long-polls are woken later, by
# the batch's real COMMIT, through this callback.
RING_LATER = "grouped_users_ring_later"
# Set by a group commit for the turn of one request: on SQLite the rows of
# its audit entries and events go to this list as (statement, rows), and
# the batch writes every turn's rows, in turn order, just before its COMMIT.
WRITE_LATER = "grouped_users_write_later"


@dataclass(frozen=True, slots=True)
class Pending:
    type: str
    data: Any
    actor: str
    request_id: str | None
    # The event is dropped if this user is deactivated (or deleted inactive)
    # as the transaction commits: see _shown.
    unless_inactive: str | None = None


@dataclass(frozen=True)
class FeedEvent:
    """An event as the feed and the webhooks show it (no slots: answers take its vars)."""

    id: str
    type: str
    occurred_at: datetime
    actor: str
    request_id: str | None
    data: Any


@dataclass(frozen=True)
class EventRow(FeedEvent):
    """An event as stored: what is shown, and its place in the commit order."""

    position: int


def queue(session: AsyncSession, events: Sequence[Pending]) -> None:
    """Keep these events to be written when the session's transaction commits.

    A session of another class (events off: GROUPED_USERS_EVENTS=false,
    a plain WriterSession) would never write them: they are not kept.
    """
    if isinstance(session.sync_session, EventSession):
        session.info.setdefault(_PENDING, []).extend(events)


# Events written per INSERT statement (see write_at_commit).
_INSERT_BATCH = 1000


def new_ids(count: int) -> list[str]:
    """`count` unique event ids: the time in milliseconds, then 80 random bits, as UUIDv7s.

    Time first (48 bits), so that new ids land at the end of the events'
    unique index rather than all over it: SQLite's work inserting them
    halved. The 80 random bits keep ids of the same millisecond apart. One
    draw for a whole transaction: a member list of 10,000 writes 20,000
    events, and a UUID object per id cost a fifth of that write.
    """
    prefix = f"evt_{time.time_ns() // 1_000_000 % 2**48:012x}"
    drawn = os.urandom(10 * count).hex()
    return [prefix + drawn[20 * n : 20 * (n + 1)] for n in range(count)]


_EVENTS = cast(Table, Event.__table__)
_COUNTER_TABLE = cast(Table, EventCounter.__table__)
# SQLite: each row at the counter's next position; the trigger of alembic
# 0010 sets the counter to it, so the next row (of this statement, or of
# the next transaction) comes after it.
_INSERT_NEXT = (
    insert(_EVENTS)
    .values(
        position=select(_COUNTER_TABLE.c.position + literal_column("1"))
        .where(_COUNTER_TABLE.c.id == literal_column("1"))
        .scalar_subquery()
    )
    .inline()
)
_EVENT_COLUMNS = ("id", "type", "occurred_at", "actor", "request_id", "data")


@dataclass(frozen=True, slots=True)
class _DriverStatements:
    """SQLite's statement at commit, compiled once, and the values' conversions.

    It goes to the driver as it is, the events as tuples, each value made
    by its column's type as SQLAlchemy would make it (the same stored
    text): SQLAlchemy's per-statement caching and per-row parameter work
    was more than the writes themselves (half the time of 20,000 events).
    """

    insert: str
    occurred_at: Callable[[Any], Any]
    data: Callable[[Any], Any]


# Per dialect: a process has one or two engines (tests make many: bounded).
@functools.lru_cache(maxsize=8)
def _driver_statements(dialect: Dialect) -> _DriverStatements:
    insert_one = _INSERT_NEXT.compile(dialect=dialect, column_keys=list(_EVENT_COLUMNS))
    # Positional parameters, in the order the code passes them.
    if insert_one.positiontup != list(_EVENT_COLUMNS):
        raise RuntimeError("the events' statement takes other parameters")
    return _DriverStatements(
        insert_one.string,
        value_converter(_EVENTS.c.occurred_at, dialect),
        value_converter(_EVENTS.c.data, dialect),
    )


class WriterSession(Session):
    """The session of writing use cases: it writes the audit entries it was given as it commits.

    With events off (GROUPED_USERS_EVENTS=false) the writers' sessions are
    of this class: the audit log is kept all the same.
    """


class EventSession(WriterSession):
    """A writer session that also writes the change events it was given as it commits."""


@event.listens_for(WriterSession, "before_commit")
def write_at_commit(session: Session) -> None:
    """Write the audit entries and the events the transaction kept, as its last statements."""
    pending = _shown(session, session.info.pop(_PENDING, None) or [])
    entries = audit.take_pending(session)
    if not (pending or entries):
        return
    if session.get_bind().dialect.name == "postgresql":
        _write_postgresql(session, pending, entries)
        return
    connection = session.connection()
    later: list[tuple[str, list[tuple[Any, ...]]]] | None = session.info.get(WRITE_LATER)
    if entries:
        sql, audit_rows = audit.driver_rows(connection.dialect, entries)
        if later is not None:
            later.append((sql, audit_rows))
        else:
            connection.exec_driver_sql(sql, audit_rows)
    if not pending:
        return
    statements = _driver_statements(connection.dialect)
    at = statements.occurred_at(datetime.now(UTC))
    ids = new_ids(len(pending))
    rows = [
        (ids[n], item.type, at, item.actor, item.request_id, statements.data(item.data))
        for n, item in enumerate(pending)
    ]
    session.info[_PUBLISHED] = True
    if later is not None:
        later.append((statements.insert, rows))
        return
    # A batch per statement: the rows' Python work runs on the event loop's
    # thread, and between two statements the loop serves other requests
    # while the driver writes, so a change of 50,000 memberships never holds
    # it for long.
    for start in range(0, len(rows), _INSERT_BATCH):
        connection.exec_driver_sql(statements.insert, rows[start : start + _INSERT_BATCH])


def _rows(pending: Sequence[Pending], *, first: int) -> list[dict[str, Any]]:
    at = datetime.now(UTC)
    ids = new_ids(len(pending))
    return [
        {
            "position": first + offset,
            "id": ids[offset],
            "type": item.type,
            "occurred_at": at,
            "actor": item.actor,
            "request_id": item.request_id,
            "data": item.data,
        }
        for offset, item in enumerate(pending)
    ]


def _shown(session: Session, pending: list[Pending]) -> list[Pending]:
    """The events without those of users that are inactive as the transaction ends.

    Decided here, once, for every writer: what the transaction leaves is
    what the core API will show, whatever order the writer worked in. A
    writer that deletes a user decides for it (the row is gone by now), and
    so may one that knows the user's state until the commit (it created the
    user, or holds the user's row locked): its events carry no user to check.
    """
    userids = {item.unless_inactive for item in pending if item.unless_inactive is not None}
    if not userids:
        return pending
    inactive = set(
        session.scalars(
            select(User.userid).where(
                in_list(session, User.userid, userids, String()), User.active.is_(False)
            )
        )
    )
    if not inactive:
        return pending
    return [item for item in pending if item.unless_inactive not in inactive]


# On PostgreSQL the transaction's last statement writes the audit entries and
# puts its events in the outbox, one row (one round trip instead of four; the
# rows travel as one JSON array each, however many there are). COMMIT then
# runs the outbox's deferred trigger (alembic 0009), which takes the
# positions from the counter, writes the events, deletes the row and
# announces the last position (delivered to listeners when, and only if, the
# transaction commits). The counter's row is locked from that trigger to the
# end of the same COMMIT: writers queue on it for the commit alone, not for a
# round trip to this process and back (the statement's answer, then COMMIT).
_QUEUED = """queued AS (
    INSERT INTO event_outbox (count, at, events) VALUES (:count, :at, CAST(:events AS json))
)"""
_AUDITED = """audited AS (
    INSERT INTO audit (at, actor, action, resource, before, after, request_id,
                       server_request_id, token_id)
    SELECT a.at, a.actor, a.action, a.resource, a.before, a.after, a.request_id,
           a.server_request_id, a.token_id
    FROM json_to_recordset(CAST(:audit AS json)) AS a(
        at timestamptz, actor text, action text, resource text, before json, after json,
        request_id text, server_request_id text, token_id bigint)
)"""
# Made of the constants above only, never of values: those are parameters.
_STATEMENTS = {
    (True, True): text(f"WITH {_QUEUED}, {_AUDITED} SELECT NULL"),
    (True, False): text(f"WITH {_QUEUED} SELECT NULL"),
    (False, True): text(f"WITH {_AUDITED} SELECT NULL"),
}


def _write_postgresql(
    session: Session, pending: list[Pending], entries: list[dict[str, Any]]
) -> None:
    parameters: dict[str, Any] = {}
    if pending:
        events = _rows(pending, first=0)
        parameters |= {
            "count": len(pending),
            "at": events[0]["occurred_at"],
            "events": json.dumps(
                [
                    {k: v for k, v in row.items() if k not in ("position", "occurred_at")}
                    for row in events
                ]
            ),
        }
    if entries:
        parameters["audit"] = json.dumps(
            [entry | {"at": entry["at"].isoformat()} for entry in entries]
        )
    session.execute(_STATEMENTS[bool(pending), bool(entries)], parameters)
    if pending:
        # Their positions are known only inside COMMIT; that there are some is enough.
        session.info[_PUBLISHED] = True


@event.listens_for(WriterSession, "after_commit")
def _ring(session: Session) -> None:
    if session.info.pop(_PUBLISHED, None) is not None:
        later = session.info.get(RING_LATER)
        if later is not None:
            later()
        else:
            ring_all()


def ring_all() -> None:
    """Wake every long-poll of this process: an event committed."""
    for bell in list(BELLS):
        bell.ring_soon()


@event.listens_for(WriterSession, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    # A rolled-back transaction (or a retried one) leaves no events behind.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_PUBLISHED, None)
        audit.take_pending(session)


class Bell:
    """Wakes the long-polls of this process when an event commits (here, or elsewhere)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._rung = asyncio.Event()
        BELLS.add(self)

    def ring(self) -> None:
        rung, self._rung = self._rung, asyncio.Event()
        rung.set()

    def close(self) -> None:
        """No more rings: its loop may be closing (rung from a thread, it would fail)."""
        BELLS.discard(self)

    def ring_soon(self) -> None:
        """Ring from any thread: directly on the bell's own loop (nearly always)."""
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self._loop:
            # No wake-up through the loop's self-pipe (a write, a poll and a
            # read per commit): in a cProfile of POSTs with and without
            # events, that extra poll was the largest single difference.
            self.ring()
        else:
            self._loop.call_soon_threadsafe(self.ring)

    def ticket(self) -> asyncio.Event:
        """Set at the next ring: take it before reading, wait on it after."""
        return self._rung


BELLS: weakref.WeakSet[Bell] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class Counter:
    position: int
    purged_through: int


async def counter(session: AsyncSession) -> Counter:
    row = (
        await session.execute(
            select(EventCounter.position, EventCounter.purged_through).where(EventCounter.id == 1)
        )
    ).one()
    return Counter(int(row[0]), int(row[1]))


# In EventRow's order: what is shown, then the position.
_COLUMNS = (
    Event.id,
    Event.type,
    Event.occurred_at,
    Event.actor,
    Event.request_id,
    Event.data,
    Event.position,
)


async def page(
    session: AsyncSession, *, after: int, limit: int, types: Sequence[str] | None = None
) -> list[EventRow]:
    query = select(*_COLUMNS).where(Event.position > after).order_by(Event.position).limit(limit)
    if types:
        query = query.where(Event.type.in_(types))
    return [EventRow(*row) for row in await session.execute(query)]


async def by_position(session: AsyncSession, *, position: int) -> EventRow | None:
    row = (await session.execute(select(*_COLUMNS).where(Event.position == position))).first()
    return None if row is None else EventRow(*row)


async def last_before(
    session: AsyncSession, *, moment: datetime, after: int, within: int
) -> int | None:
    """The last of the `within` positions after `after` that is before the first event to keep.

    An event to keep is one of `moment` or later. Read in the order of
    positions (their key; no index on the time, that every event would pay
    to write), at most `within` of them: a purge goes on chunk by chunk,
    and none of its statements holds the database (on SQLite, the event
    loop) for long. Times follow positions but for a few milliseconds
    between processes; an older event after the first one to keep goes
    once that one expires. None: nothing to purge in the chunk.
    """
    chunk = and_(Event.position > after, Event.position <= after + within)
    first_kept = (
        select(Event.position)
        .where(chunk, Event.occurred_at >= moment)
        .order_by(Event.position)
        .limit(1)
        .scalar_subquery()
    )
    found = await session.scalar(
        select(Event.position)
        .where(chunk, Event.position < func.coalesce(first_kept, after + within + 1))
        .order_by(Event.position.desc())
        .limit(1)
    )
    return None if found is None else int(found)


async def mark_purged(session: AsyncSession, *, through: int) -> None:
    await session.execute(
        update(EventCounter)
        .where(EventCounter.id == 1, EventCounter.purged_through < through)
        .values(purged_through=through)
    )


async def delete_through(session: AsyncSession, *, position: int, limit: int) -> int:
    """Delete up to `limit` of the oldest events at or below `position`; how many went."""
    oldest = select(Event.position).where(Event.position <= position).order_by(Event.position)
    result = await session.execute(
        delete(Event)
        .where(Event.position.in_(oldest.limit(limit)))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
