"""Group commit on SQLite: many requests to a COMMIT, each answered for itself.

The requests of a test are fired at once over one ASGI app, so they queue for
turns on the committer and share batches (checked: a test whose requests all
ran in batches of one would prove nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Integer, event, literal, select, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.engine.default import CACHE_HIT
from sqlalchemy.exc import OperationalError

from app.api import create_app
from app.db import Database, create_database
from app.group_commit import Batch, Committer
from app.repository.common import execute
from app.service.common import transaction
from app.settings import Settings
from tests.support.helpers import assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio

NEW = [f"user{i:02d}" for i in range(12)]


@pytest.fixture
def settings(sqlite_template: Path, tmp_path: Path) -> Settings:
    """SQLite only (PostgreSQL has no group commit); conftest's `database` and `client` use it."""
    path = tmp_path / "grouped-users.db"
    shutil.copy(sqlite_template, path)
    return Settings(database_url=f"sqlite+aiosqlite:///{path}", auth="disabled")


def _committer(database: Database) -> Committer:
    assert database.committer is not None
    return database.committer


def database_turn(database: Database) -> contextlib.AbstractAsyncContextManager[Batch]:
    """A turn of the database's committer, held open for as long as the test likes."""
    return _committer(database).turn()


async def _rows(database: Database, sql: str) -> list[Any]:
    async with database.engine.connect() as connection:
        return list(await connection.execute(text(sql)))


def _body(groups: list[str]) -> dict[str, Any]:
    return {"first_name": "Ann", "last_name": "Lee", "groups": groups}


async def test_a_failing_request_rolls_back_alone(
    client: httpx.AsyncClient, database: Database
) -> None:
    await create_group(client, "staff")
    await create_user(client, "taken")
    (before,) = (await _rows(database, "SELECT position FROM event_counter"))[0]
    largest_before = _committer(database).stats.largest

    calls = [client.post(f"/users/{userid}", json=_body(["staff"])) for userid in NEW]
    # A duplicate (409) and an unknown group (422) in the middle of the storm.
    calls.insert(4, client.post("/users/taken", json=_body(["staff"])))
    calls.insert(8, client.post("/users/ghostly", json=_body(["staff", "ghosts"])))
    responses = await asyncio.gather(*calls)

    statuses = {r.request.url.path.rsplit("/", 1)[1]: r for r in responses}
    assert_problem(statuses["taken"], 409, "user_exists")
    assert_problem(statuses["ghostly"], 422, "unknown_groups")
    for userid in NEW:
        assert statuses[userid].status_code == 201, statuses[userid].text
    # The requests did share transactions.
    assert _committer(database).stats.largest > max(largest_before, 1)

    assert (await client.get("/users/ghostly")).status_code == 404
    taken = await client.get("/users/taken")
    assert taken.json()["groups"] == []
    members = await client.get("/groups/staff")
    assert members.json() == sorted(NEW)

    # One user.created (and one membership event) per committed request, at
    # positions that follow each other with no gap; nothing of the others.
    events = await _rows(
        database, f"SELECT position, type, data FROM events WHERE position > {before}"
    )
    positions = [row[0] for row in events]
    assert positions == list(range(before + 1, before + 1 + len(events)))
    created = sorted(
        row[2]["userid"] if isinstance(row[2], dict) else row[2]
        for row in events
        if row[1] == "user.created"
    )
    assert len(created) == len(NEW)
    assert not [row for row in events if "ghostly" in str(row[2])]
    assert len([row for row in events if "taken" in str(row[2])]) == 0
    (counter,) = (await _rows(database, "SELECT position FROM event_counter"))[0]
    assert counter == before + len(events)

    audited = await _rows(database, "SELECT resource FROM audit WHERE action = 'user.create'")
    assert sorted(row[0] for row in audited) == sorted(f"users/{u}" for u in [*NEW, "taken"])


@pytest.fixture
def failing_commits(database: Database) -> Iterator[list[int]]:
    """While the list is non-empty, every COMMIT on the engine fails (a disk error)."""
    armed: list[int] = []

    def fail(_connection: Any) -> None:
        if armed:
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    engine = _committer(database).engine
    event.listen(engine, "commit", fail)
    yield armed
    event.remove(engine, "commit", fail)


async def test_no_request_is_answered_before_its_commit(
    client: httpx.AsyncClient, database: Database, failing_commits: list[int]
) -> None:
    await create_group(client, "staff")
    (before,) = (await _rows(database, "SELECT position FROM event_counter"))[0]
    audit_before = len(await _rows(database, "SELECT id FROM audit"))

    failing_commits.append(1)
    responses = await asyncio.gather(
        *(client.post(f"/users/{userid}", json=_body(["staff"])) for userid in NEW)
    )
    failing_commits.clear()

    for response in responses:
        assert_problem(response, 503, "not_committed")
        assert response.headers["retry-after"] == "1"
    assert _committer(database).stats.failed >= 1
    assert _committer(database).stats.largest > 1
    for userid in NEW:
        assert (await client.get(f"/users/{userid}")).status_code == 404
    assert (await client.get("/groups/staff")).status_code == 404  # no members
    assert await _rows(database, f"SELECT position FROM events WHERE position > {before}") == []
    assert len(await _rows(database, "SELECT id FROM audit")) == audit_before

    # The committer recovers: the next writes go through.
    await create_user(client, NEW[0], ["staff"])
    assert (await client.get(f"/users/{NEW[0]}")).json()["groups"] == ["staff"]


async def test_if_match_is_checked_within_a_batch(client: httpx.AsyncClient) -> None:
    await create_user(client, "ann")
    tag = (await client.get("/users/ann")).headers["etag"]
    # Both PUTs hold the same tag; the second to run finds it changed.
    puts = (
        client.put("/users/ann", json=_body([]) | {"last_name": name}, headers={"If-Match": tag})
        for name in ("One", "Two")
    )
    responses = await asyncio.gather(*puts)
    assert sorted(r.status_code for r in responses) == [200, 412]
    loser = next(r for r in responses if r.status_code == 412)
    assert_problem(loser, 412, "precondition_failed")


async def test_turns_run_on_a_connection_that_syncs_every_commit(database: Database) -> None:
    async with database.writer() as session, transaction(session):
        assert session.get_bind() is not database.engine.sync_engine  # the batch's connection
        pragmas = [
            (await session.execute(text(f"PRAGMA {name}"))).scalar()
            for name in ("synchronous", "journal_mode", "foreign_keys")
        ]
    assert pragmas == [2, "wal", 1]  # FULL: a COMMIT is on disk before it returns


async def test_a_turn_compiles_no_savepoint_and_its_statements_come_from_the_cache(
    database: Database,
) -> None:
    """Each turn's SAVEPOINT has a new name: compiled, it would be a new
    statement every turn (and a dialect subclass that does not declare
    statement caching would compile every statement of every turn)."""
    compiled: list[tuple[str, bool]] = []

    def record(
        _connection: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool
    ) -> None:
        compiled.append((statement.split()[0], context.compiled is not None))

    engine = _committer(database).engine
    event.listen(engine, "before_cursor_execute", record)
    hits = []
    try:
        for _ in range(3):
            async with database.writer() as session, transaction(session):
                result = await session.execute(select(literal(1, Integer)))
                assert isinstance(result, CursorResult)
                hits.append(result.context.cache_hit)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert [what for what in compiled if what[0] in ("SAVEPOINT", "RELEASE")] == [
        ("SAVEPOINT", False),
        ("RELEASE", False),
    ] * 3
    assert hits[1:] == [CACHE_HIT, CACHE_HIT]


class _Refused(Exception):
    pass


async def test_a_turns_statements_run_in_its_savepoint_without_the_sessions_execute(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2].split()[0])

    async def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the session's execute ran in a turn")

    async def failing_turn() -> None:
        async with database.writer() as session, transaction(session):
            monkeypatch.setattr(session, "execute", refused)
            one = await execute(session, select(literal(1, Integer)))
            assert one.scalar_one() == 1
            await execute(session, text("INSERT INTO groups (name, version) VALUES ('gone', 1)"))
            raise _Refused()

    engine = _committer(database).engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        with pytest.raises(_Refused):
            await failing_turn()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # After the batch's BEGIN: the turn's savepoint, then its two statements in it.
    assert seen[seen.index("SAVEPOINT") :][:3] == ["SAVEPOINT", "SELECT", "INSERT"]
    # Rolled back with its savepoint: the turn failed.
    assert await _rows(database, "SELECT name FROM groups WHERE name = 'gone'") == []


@pytest.fixture
def impatient(settings: Settings) -> Settings:
    return settings.model_copy(update={"sqlite_busy_timeout_ms": 200})


async def test_a_write_lock_held_elsewhere_answers_busy_once_for_the_queue(
    impatient: Settings,
) -> None:
    path = impatient.sqlite_path()
    assert path is not None
    database = create_database(impatient)
    app = create_app(impatient, database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            holder.execute("BEGIN IMMEDIATE")  # another process's writer
            responses = await asyncio.gather(
                *(client.post(f"/users/{userid}", json=_body([])) for userid in NEW)
            )
            holder.execute("ROLLBACK")
            for response in responses:
                assert_problem(response, 503, "database_busy")
            # The requests queued behind the one whose BEGIN timed out did not
            # each wait the busy timeout again.
            assert _committer(database).stats.failed_begins == 1
            await create_user(client, NEW[0])
    finally:
        holder.close()
        await database.dispose()


def _write_lock_free(path: Path) -> bool:
    """Whether a writer of another process could BEGIN IMMEDIATE now, without waiting."""
    probe = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


async def _insert_group(database: Database, name: str) -> None:
    async with database.writer() as session, transaction(session):
        await execute(session, text(f"INSERT INTO groups (name, version) VALUES ('{name}', 1)"))


async def test_a_process_waits_for_anothers_batch_and_goes_on_after_its_commit(
    settings: Settings,
) -> None:
    """Two databases on one file, as two worker processes: each its own turn file handle."""
    first, second = create_database(settings), create_database(settings)
    try:
        async with database_turn(first) as batch:
            waiting = asyncio.create_task(_insert_group(second, "second"))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # held at the turn file while the batch is open
            assert _committer(second).stats.batches == 0
        await batch.durable()
        await asyncio.wait_for(waiting, 10)
        assert _committer(second).stats.batches == 1
        assert await _rows(second, "SELECT name FROM groups WHERE name = 'second'") == [("second",)]
    finally:
        await first.dispose()
        await second.dispose()


async def test_a_request_given_up_while_waiting_for_its_turn_leaves_no_lock_behind(
    settings: Settings,
) -> None:
    path = settings.sqlite_path()
    assert path is not None
    first, second = create_database(settings), create_database(settings)
    try:
        async with database_turn(first) as batch:
            waiting = asyncio.create_task(_insert_group(second, "given-up"))
            await asyncio.sleep(0.3)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        await batch.durable()
        # The thread that was waiting took the turn file and BEGAN once the
        # batch committed; what it took is undone, not left to the next turn.
        for _ in range(100):
            if _write_lock_free(path):
                break
            await asyncio.sleep(0.05)
        assert _write_lock_free(path)
        await asyncio.wait_for(_insert_group(second, "next"), 10)
        await asyncio.wait_for(_insert_group(first, "first-again"), 10)
        names = await _rows(second, "SELECT name FROM groups ORDER BY name")
        assert [name for (name,) in names if name in ("given-up", "next", "first-again")] == [
            "first-again",
            "next",
        ]
    finally:
        await first.dispose()
        await second.dispose()


async def test_the_turns_audit_and_events_are_written_by_the_batch_or_not_at_all(
    client: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written in COMMIT's thread before it commits: if they fail, the batch fails whole."""
    await create_user(client, "kept")
    write_later = Batch.write_later

    def poisoned(batch: Batch, writes: list[tuple[str, list[Any]]]) -> None:
        write_later(batch, [*writes, ("INSERT INTO no_such_table VALUES (?)", [(1,)])])

    monkeypatch.setattr(Batch, "write_later", poisoned)
    responses = await asyncio.gather(
        *(client.post(f"/users/{userid}", json=_body([])) for userid in NEW)
    )
    monkeypatch.undo()
    for response in responses:
        assert_problem(response, 503, "not_committed")
    assert await _rows(database, "SELECT userid FROM users") == [("kept",)]
    # The committer goes on with a new connection; the audit log and feed hold what committed.
    await create_user(client, "after")
    resources = await _rows(database, "SELECT resource FROM audit ORDER BY id")
    assert resources == [("users/kept",), ("users/after",)]
    kinds = await _rows(database, "SELECT type FROM events ORDER BY position")
    assert kinds == [("user.created",), ("user.created",)]


def _turn_file_free(path: Path) -> bool:
    """Whether another process's committer could take the turn file now."""
    fd = os.open(path.with_name(path.name + "-writer.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


async def test_a_request_given_up_in_begin_keeps_the_turn_file_until_its_thread_ends(
    settings: Settings,
) -> None:
    """Its thread holds the file while BEGIN waits for a writer elsewhere (an import, say)."""
    patient = settings.model_copy(update={"sqlite_busy_timeout_ms": 5000})
    path = patient.sqlite_path()
    assert path is not None
    database = create_database(patient)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(_insert_group(database, "given-up"))
        await asyncio.sleep(0.3)
        assert not _turn_file_free(path)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # Still in BEGIN, the thread holds the file: other committers wait on
        # it, not on SQLite's busy handler.
        assert not _turn_file_free(path)
        holder.execute("ROLLBACK")
        for _ in range(100):
            if _turn_file_free(path) and _write_lock_free(path):
                break
            await asyncio.sleep(0.05)
        assert _turn_file_free(path)
        assert _write_lock_free(path)
        await asyncio.wait_for(_insert_group(database, "next"), 10)
        names = [name for (name,) in await _rows(database, "SELECT name FROM groups")]
        assert "next" in names
        assert "given-up" not in names
    finally:
        holder.close()
        await database.dispose()


async def test_a_write_out_of_time_after_its_turn_answers_what_its_batch_did(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its time limit runs out while the batch commits: not "nothing changed", but 201."""
    commit = Committer._commit_and_let_go

    def slow_commit(committer: Committer, batch: Batch) -> None:
        time.sleep(0.6)  # in COMMIT's thread, past the request's 0.2 s
        commit(committer, batch)

    monkeypatch.setattr(Committer, "_commit_and_let_go", slow_commit)
    hasty = settings.model_copy(update={"request_timeout_seconds": 0.2})
    database = create_database(hasty)
    app = create_app(hasty, database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            response = await client.post("/users/late", json=_body([]))
            assert response.status_code == 201, response.text
            monkeypatch.undo()
            assert (await client.get("/users/late")).status_code == 200
    finally:
        await database.dispose()
