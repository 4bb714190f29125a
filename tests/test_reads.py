"""app.reads: which reads may run on the event loop's thread, and which may not."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import Float, Integer, bindparam, event, func, select, text

from app.api import create_app
from app.db import Database
from app.reads import users as user_reads
from app.reads.prepared import CompiledRead, PreparedReader
from app.reads.statement import SharedSessionMisuse
from app.settings import Settings
from tests.support.helpers import assert_problem, create_group, create_user, insert_many_users

pytestmark = pytest.mark.anyio


@pytest.fixture
def on_the_loop(database: Database) -> list[str]:
    """The SQL of every statement the fast reader (the loop's thread) runs."""
    seen: list[str] = []

    def record(sql: str, _parameters: dict[str, Any]) -> None:
        seen.append(sql)

    if database.fast_reader is not None:
        database.fast_reader.listeners.append(record)
    return seen


async def test_reads_that_can_scan_never_run_on_the_loop(
    client: httpx.AsyncClient, database: Database, on_the_loop: list[str]
) -> None:
    await create_group(client, "admins")
    await create_user(client, "jsmith", ["admins"])
    for url in ["/users?q=smi", "/users?q=s", "/users?group=admins", "/groups"]:
        response = await client.get(url)
        assert response.status_code == 200, response.text
    assert on_the_loop == []
    # Point lookups do, where there is a fast reader (a SQLite file).
    assert (await client.get("/users/jsmith")).status_code == 200
    assert (await client.get("/groups/admins")).status_code == 200
    assert len(on_the_loop) == (2 if database.fast_reader is not None else 0)


@pytest.mark.parametrize("settings", ["postgresql"], indirect=True)
async def test_point_lookups_on_postgresql_take_the_prepared_reader_and_scans_do_not(
    client: httpx.AsyncClient, database: Database
) -> None:
    assert database.prepared_reader is not None
    prepared: list[str] = []
    database.prepared_reader.listeners.append(lambda sql, _parameters: prepared.append(sql))
    await create_group(client, "admins")
    await create_user(client, "jsmith", ["admins"])
    for url in ["/users?q=smi", "/users?group=admins", "/groups"]:
        assert (await client.get(url)).status_code == 200
    assert prepared == []
    user = await client.get("/users/jsmith")
    assert user.json() == {
        "first_name": "Jsmith",
        "last_name": "Tester",
        "userid": "jsmith",
        "groups": ["admins"],
    }
    group = await client.get("/groups/admins")
    assert group.json() == ["jsmith"]
    assert (await client.get("/users/nobody")).status_code == 404
    assert len(prepared) == 3


async def test_the_shared_session_refuses_a_read_that_needs_a_transaction(
    database: Database,
) -> None:
    session = database.statement_reader()
    if database.shared_statement_session is None:
        # No point reader (a SQLite database in memory): a session of its own.
        assert await user_reads.page(session, after=None, limit=1, search="x") == []
        return
    with pytest.raises(SharedSessionMisuse):
        await user_reads.page(session, after=None, limit=1, search="x")


async def _found(client: httpx.AsyncClient, q: str) -> list[str]:
    response = await client.get("/users", params={"q": q})
    assert response.status_code == 200, response.text
    return [user["userid"] for user in response.json()["items"]]


async def test_searches_through_the_substring_index_follow_every_change(
    client: httpx.AsyncClient,
) -> None:
    for userid, first, last in [
        ("jdoe", "Joe", "Smith"),
        ("mjones", "Mary", 'O"Smithers'),
        ("x_1", "Ann", "100%"),
    ]:
        body = {"first_name": first, "last_name": last}
        assert (await client.post(f"/users/{userid}", json=body)).status_code == 201
    # Three characters or more: the index; fewer: a scan. The same answers.
    assert await _found(client, "SMITH") == ["jdoe", "mjones"]
    assert await _found(client, "sm") == ["jdoe", "mjones"]
    assert await _found(client, '"smi') == ["mjones"]
    assert await _found(client, "0%") == ["x_1"]
    assert await _found(client, "x_1") == ["x_1"]
    patch = {"last_name": "Brown"}
    assert (await client.patch("/users/jdoe", json=patch)).status_code == 200
    assert await _found(client, "smith") == ["mjones"]
    assert await _found(client, "rown") == ["jdoe"]
    assert (await client.delete("/users/mjones")).status_code == 204
    assert await _found(client, "smith") == []


@pytest.fixture
async def many_users(database: Database) -> int:
    count = 60_000
    await insert_many_users(database, count)
    return count


async def test_a_search_over_its_time_limit_is_stopped_and_the_connection_serves_on(
    settings: Settings, database: Database, many_users: int
) -> None:
    # Two characters are too few for the substring index: the search scans
    # every row, since none matches, well over the 1 ms limit.
    q = "zq"
    hasty = create_app(settings.model_copy(update={"search_timeout_ms": 1}), database=database)
    transport = httpx.ASGITransport(app=hasty, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        for _ in range(3):
            body = assert_problem(
                await client.get("/users", params={"q": q}), 503, "search_timeout"
            )
            assert "1 ms" in body["detail"]
        # The pool's connections serve on, with no handler or timeout left on them.
        assert (await client.get("/users", params={"limit": 2})).status_code == 200
    async with database.reader() as session:
        assert await user_reads.page(session, after=None, limit=2, search=q) == []
        found = await user_reads.page(session, after=None, limit=2, search="u599")
    assert [userid for userid, _ in found] == ["u599", "u5990"]


async def test_a_point_read_too_long_for_the_loop_runs_on_the_drivers_thread(
    client: httpx.AsyncClient, database: Database, on_the_loop: list[str]
) -> None:
    # A group's member list is an indexed read, but a huge group's is large.
    await create_group(client, "everyone")
    await insert_many_users(database, 20_000)
    async with database.writer() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO memberships (group_id, user_id) SELECT groups.id, users.id"
                " FROM groups, users WHERE groups.name = 'everyone'"
            )
        )
    through_driver: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        through_driver.append(statement)

    if database.fast_reader is not None:
        database.fast_reader.budget_seconds = 0.0
    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        response = await client.get("/groups/everyone")
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    assert response.status_code == 200, response.text
    members = response.json()
    assert len(members) == 20_000
    assert members == sorted(members)
    # Tried on the loop where there is a fast reader, stopped, then read by the
    # driver; on PostgreSQL the prepared reader (asyncpg, never on the loop's
    # thread) answers it without the engine.
    assert len(on_the_loop) == (1 if database.fast_reader is not None else 0)
    read_by_engine = any("memberships" in statement for statement in through_driver)
    assert read_by_engine == (database.fast_reader is not None)


async def test_the_prepared_reader_serves_lookups_in_the_order_they_came(
    postgres_url: str,
) -> None:
    """A lookup waiting for a connection is not overtaken by one that came later."""
    reader = PreparedReader(postgres_url, size=1)
    slow = CompiledRead(select(func.pg_sleep(bindparam("seconds", type_=Float))))
    quick = CompiledRead(select(bindparam("n", type_=Integer)))
    order: list[str] = []

    async def greedy() -> None:
        await reader.rows(slow, {"seconds": 0.05})
        order.append("greedy")
        for _ in range(2):
            await reader.rows(quick, {"n": 1})  # back at once
            order.append("greedy")

    async def patient() -> None:
        await asyncio.sleep(0.01)  # while greedy's first lookup runs
        await reader.rows(quick, {"n": 2})
        order.append("patient")

    try:
        await reader.rows(quick, {"n": 0})  # the pool is open
        await asyncio.gather(greedy(), patient())
    finally:
        await reader.close()
    assert order == ["greedy", "patient", "greedy", "greedy"]
