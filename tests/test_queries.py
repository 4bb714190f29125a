"""What the endpoints ask the database: a constant number of statements, served by indexes."""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import event, insert

from app.db import Database
from app.models import Group, User
from tests.support.helpers import create_group, create_user

pytestmark = pytest.mark.anyio

MEMBERS = 10_000
GROUPS = 200
# The most statements any one of these requests may cost, whatever the size: a
# write reads, locks the rows it changes in a fixed order (on PostgreSQL),
# changes them and bumps the versions on both sides of the memberships; as it
# commits, it takes its feed positions, writes its events and (on PostgreSQL)
# announces them: three statements, whatever the number of events.
MOST_STATEMENTS = 15

MEMBER_IDS = [f"m{i:05d}" for i in range(MEMBERS)]
GROUP_NAMES = [f"grp{i:03d}" for i in range(GROUPS)]
# Transaction control and connection set-up, not work.
NOISE = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA)\b", re.IGNORECASE)


@dataclass
class Statement:
    sql: str
    parameters: Any


@contextmanager
def captured(database: Database) -> Iterator[list[Statement]]:
    """The statements run inside the block, noise left out: through the engine, through
    SQLite's group committer (app.group_commit, an engine of its own) and through the
    point readers that bypass both (app.reads.fast, app.reads.prepared)."""
    statements: list[Statement] = []

    def record(
        _conn: Any, _cursor: Any, sql: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        if not NOISE.match(sql):
            statements.append(Statement(sql, parameters))

    def record_fast(sql: str, parameters: dict[str, Any]) -> None:
        statements.append(Statement(sql, parameters))

    targets = [database.engine.sync_engine]
    if database.committer is not None:
        targets.append(database.committer.engine)
    for target in targets:
        event.listen(target, "before_cursor_execute", record)
    readers = [r for r in (database.fast_reader, database.prepared_reader) if r is not None]
    for reader in readers:
        reader.listeners.append(record_fast)
    try:
        yield statements
    finally:
        for target in targets:
            event.remove(target, "before_cursor_execute", record)
        for reader in readers:
            reader.listeners.remove(record_fast)


@pytest.fixture
async def seeded(database: Database) -> Database:
    """10,000 users and 200 groups, inserted in bulk rather than over HTTP."""
    async with database.engine.begin() as connection:
        await connection.execute(
            insert(User),
            [
                {
                    "userid": u,
                    "first_name": "M",
                    "last_name": u,
                    "search_names": f"m\n{u}",
                    "version": 1,
                }
                for u in MEMBER_IDS
            ],
        )
        await connection.execute(insert(Group), [{"name": g, "version": 1} for g in GROUP_NAMES])
    if database.fast_reader is not None:
        # A read over the loop's time budget is stopped and run again on a
        # thread (tests/test_reads.py covers that): on a loaded machine the
        # 10,000-member read sometimes is, which would count its one
        # statement twice. Here only the statements a request needs count.
        database.fast_reader.budget_seconds = math.inf
    return database


Step = Callable[[httpx.AsyncClient, str, int], Awaitable[httpx.Response | None]]


async def _nothing(_client: httpx.AsyncClient, _name: str, _size: int) -> None:
    return None


async def _empty_group(client: httpx.AsyncClient, name: str, _size: int) -> None:
    await create_group(client, name)


async def _full_group(client: httpx.AsyncClient, name: str, size: int) -> None:
    await create_group(client, name, MEMBER_IDS[:size])


async def _plain_user(client: httpx.AsyncClient, name: str, _size: int) -> None:
    await create_user(client, name)


async def _member_of(client: httpx.AsyncClient, name: str, size: int) -> None:
    await create_user(client, name, GROUP_NAMES[:size])


def _record(size: int) -> dict[str, Any]:
    return {"first_name": "Joe", "last_name": "Smith", "groups": GROUP_NAMES[:size]}


@dataclass(frozen=True)
class Case:
    id: str
    small: int
    large: int
    status: int
    setup: Step
    action: Step


CASES = [
    Case(
        "PUT /groups",
        10,
        MEMBERS,
        200,
        _empty_group,
        lambda c, name, size: c.put(f"/groups/{name}", json=MEMBER_IDS[:size]),
    ),
    # Half the members stay, half go, and as many come: every step has work.
    Case(
        "PUT /groups again",
        10,
        MEMBERS // 2,
        200,
        _full_group,
        lambda c, name, size: c.put(f"/groups/{name}", json=MEMBER_IDS[size // 2 : size * 3 // 2]),
    ),
    Case("GET /groups", 10, MEMBERS, 200, _full_group, lambda c, name, _: c.get(f"/groups/{name}")),
    Case(
        "DELETE /groups",
        10,
        MEMBERS,
        204,
        _full_group,
        lambda c, name, _: c.delete(f"/groups/{name}"),
    ),
    Case(
        "POST /users",
        1,
        GROUPS,
        201,
        _nothing,
        lambda c, name, size: c.post(f"/users/{name}", json=_record(size)),
    ),
    Case(
        "PUT /users",
        1,
        GROUPS,
        200,
        _plain_user,
        lambda c, name, size: c.put(f"/users/{name}", json=_record(size)),
    ),
    Case(
        "PUT /users again",
        2,
        GROUPS // 2,
        200,
        _member_of,
        lambda c, name, size: c.put(
            f"/users/{name}",
            json={
                "first_name": "Jo",
                "last_name": "S",
                "groups": GROUP_NAMES[size // 2 : size * 3 // 2],
            },
        ),
    ),
    Case("GET /users", 1, GROUPS, 200, _member_of, lambda c, name, _: c.get(f"/users/{name}")),
    Case(
        "DELETE /users", 1, GROUPS, 204, _member_of, lambda c, name, _: c.delete(f"/users/{name}")
    ),
]


def _event_batches_as_one(statements: list[Statement]) -> list[Statement]:
    """The statements, each run of event INSERTs counted once.

    SQLite writes a transaction's events 1,000 rows a statement (the loop
    serves others between two; app.repository.events): bounded batches,
    not a statement per row.
    """
    kept: list[Statement] = []
    for statement in statements:
        batch = statement.sql.startswith("INSERT INTO events")
        if batch and kept and kept[-1].sql.startswith("INSERT INTO events"):
            continue
        kept.append(statement)
    return kept


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_statement_count_does_not_grow_with_size(
    client: httpx.AsyncClient, seeded: Database, case: Case
) -> None:
    counts: dict[int, int] = {}
    for size in (case.small, case.large):
        name = f"target{size}"
        await case.setup(client, name, size)
        with captured(seeded) as statements:
            response = await case.action(client, name, size)
        assert response is not None
        assert response.status_code == case.status, response.text
        counts[size] = len(_event_batches_as_one(statements))
    assert counts[case.small] == counts[case.large], counts
    assert 1 <= counts[case.large] <= MOST_STATEMENTS, counts


async def test_member_list_of_an_empty_group_costs_one_statement(
    client: httpx.AsyncClient, database: Database
) -> None:
    await create_group(client, "empty")
    with captured(database) as statements:
        response = await client.get("/groups/empty")
    assert response.status_code == 404
    assert len(statements) == 1


FULL_SCAN = re.compile(r"^SCAN (users|memberships|groups)\b")


async def _plans(database: Database, statements: list[Statement]) -> dict[str, list[str]]:
    """SQLite's query plan of each statement, as it ran, with its own parameters."""
    plans: dict[str, list[str]] = {}
    async with database.engine.connect() as connection:
        for statement in statements:
            rows = await connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement.sql}", statement.parameters
            )
            plans[statement.sql] = [str(detail) for detail in rows.scalars(3)]
    return plans


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "request_line",
    [
        "GET /users/m00042",
        "GET /users/nobody",
        "GET /groups/grp007",
        "GET /groups/grp008",
        "GET /groups/nothing",
        "PUT /groups/grp009",
        "PUT /users/m00043",
        "DELETE /users/m00044",
        "DELETE /groups/grp010",
    ],
)
async def test_lookups_use_indexes_not_full_scans(
    client: httpx.AsyncClient, seeded: Database, request_line: str
) -> None:
    # grp007..grp010 exist (seeded); grp008 stays without members.
    for group, members in (("grp007", MEMBER_IDS[:50]), ("grp010", MEMBER_IDS[100:200])):
        assert (await client.put(f"/groups/{group}", json=members)).status_code == 200
    await create_user(client, "extra", GROUP_NAMES[:20])
    bodies: dict[str, Any] = {
        "PUT /groups/grp009": MEMBER_IDS[40:45],
        "PUT /users/m00043": {"first_name": "A", "last_name": "B", "groups": GROUP_NAMES[5:9]},
    }
    method, path = request_line.split()
    with captured(seeded) as statements:
        response = await client.request(method, path, json=bodies.get(request_line))
    assert response.status_code < 500, response.text
    assert statements
    plans = await _plans(seeded, statements)
    scans = {sql: plan for sql, plan in plans.items() if any(FULL_SCAN.match(s) for s in plan)}
    assert not scans, scans


# What each write of a user costs, BEGIN and COMMIT left out, on each database.
# On PostgreSQL the audit entry and the events are one statement at commit
# (app.repository.events), the groups are found and locked at once, a new
# user's insert, its memberships and its groups' bump are one statement, so
# are a changed user's membership writes and its groups' bump, and a
# deleted user's memberships are deleted, returned and their groups bumped in
# the DELETE itself; SQLite takes no row locks but writes the audit entry and
# the events one by one (a trigger advances the counter with each event),
# and no CTE of it may write. A writer of
# a user holds (or made) its row, so it knows whether the user is active and
# asks nothing about it at commit. PostgreSQL reads a locked user's
# memberships after its lock (app.repository.users.lock_with_groups: a join
# in the locking statement would miss those committed while the lock waited).
WRITES: list[tuple[str, str, str, Any, dict[str, int]]] = [
    ("create in two groups", "POST", "/users/w1", _record(2), {"postgresql": 3, "sqlite": 6}),
    ("rename", "PATCH", "/users/w1", {"last_name": "Other"}, {"postgresql": 4, "sqlite": 4}),
    (
        "move to other groups",
        "PATCH",
        "/users/w1",
        {"groups": GROUP_NAMES[1:3]},
        {"postgresql": 7, "sqlite": 8},
    ),
    ("delete", "DELETE", "/users/w1", None, {"postgresql": 4, "sqlite": 5}),
]


async def test_user_writes_cost_these_statements(
    client: httpx.AsyncClient, seeded: Database
) -> None:
    counts: dict[str, int] = {}
    for label, method, path, body, _ in WRITES:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        with captured(seeded) as statements:
            response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code < 300, response.text
        counts[label] = len(statements)
    assert counts == {label: expected[seeded.dialect] for label, *_, expected in WRITES}
