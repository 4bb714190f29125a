"""app.reads: which reads may run on the event loop's thread, and which may not."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.db import Database
from app.reads import users as user_reads
from app.reads.statement import SharedSessionMisuse
from tests.support.helpers import create_group, create_user

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
