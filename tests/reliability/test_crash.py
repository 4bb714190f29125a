"""Crash test: SIGKILL the server mid-load, restart it, lose nothing.

`python -m app serve` runs over a database of its own (a fresh SQLite file, or
a fresh PostgreSQL database on the TEST_POSTGRES_URL server). WRITERS clients
create and change users, groups and memberships as fast as they can, each
over its own names and one request at a time, recording every 2xx. After
LOAD_SECONDS the whole process group is killed with SIGKILL. Then:

- every write that got a 2xx is there, complete (record, memberships seen from
  both sides, and its audit entry, written in the same transaction);
- the one request per writer that was in flight is there whole or not at all:
  the tables equal the writer's acknowledged state, or that state plus the
  request, never anything in between;
- on SQLite, `PRAGMA integrity_check` is `ok`; on both, no membership points
  at a missing user or group;
- the restarted server serves the same state and takes new writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.migrations import head_revision
from tests.support.live_server import (
    LiveServer,
    Snapshot,
    async_url,
    graceful_exit,
    launch,
    served_database,
    serving,
    snapshot,
    terminate,
    wait_until_up,
)

pytestmark = pytest.mark.anyio

WRITERS = 8
LOAD_SECONDS = 2.5
# Killed once both hold: LOAD_SECONDS passed and this many writes were acknowledged.
MIN_ACKS = 50
# ... but never later than this: fewer acknowledged writes fail the test.
MAX_LOAD_SECONDS = 20.0
REQUEST_TIMEOUT = 15.0
MERGE_PATCH = "application/merge-patch+json"


@dataclass
class Model:
    """What one writer's names should look like in the database."""

    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)
    # (group, userid)
    members: set[tuple[str, str]] = field(default_factory=set)

    def groups_of(self, userid: str) -> list[str]:
        return sorted(g for g, u in self.members if u == userid)

    def members_of(self, group: str) -> list[str]:
        return sorted(u for g, u in self.members if g == group)


@dataclass(frozen=True)
class Op:
    """One request, the status it must get, and what it does to the model when it does."""

    method: str
    path: str
    status: int
    action: str
    apply: Callable[[Model], None]
    body: Any = None
    content_type: str = "application/json"


def _create_group(name: str) -> Op:
    def apply(m: Model) -> None:
        m.groups.add(name)

    return Op("POST", f"/groups/{name}", 201, "group.create", apply)


def _create_user(userid: str, first: str, last: str, groups: list[str]) -> Op:
    def apply(m: Model) -> None:
        m.users[userid] = (first, last)
        m.members |= {(g, userid) for g in groups}

    body = {"first_name": first, "last_name": last, "groups": groups}
    return Op("POST", f"/users/{userid}", 201, "user.create", apply, body)


def _replace_members(name: str, userids: list[str]) -> Op:
    def apply(m: Model) -> None:
        m.members = {(g, u) for g, u in m.members if g != name} | {(name, u) for u in userids}

    return Op("PUT", f"/groups/{name}", 200, "group.replace_members", apply, userids)


def _add_member(name: str, userid: str) -> Op:
    def apply(m: Model) -> None:
        m.members.add((name, userid))

    return Op("PUT", f"/groups/{name}/members/{userid}", 204, "membership.add", apply)


def _patch_last_name(userid: str, last: str) -> Op:
    def apply(m: Model) -> None:
        m.users[userid] = (m.users[userid][0], last)

    return Op(
        "PATCH", f"/users/{userid}", 200, "user.patch", apply, {"last_name": last}, MERGE_PATCH
    )


def _delete_user(userid: str) -> Op:
    def apply(m: Model) -> None:
        del m.users[userid]
        m.members = {(g, u) for g, u in m.members if u != userid}

    return Op("DELETE", f"/users/{userid}", 204, "user.delete", apply)


def _delete_group(name: str) -> Op:
    def apply(m: Model) -> None:
        m.groups.discard(name)
        m.members = {(g, u) for g, u in m.members if g != name}

    return Op("DELETE", f"/groups/{name}", 204, "group.delete", apply)


def _plan(prefix: str, m: Model) -> Iterator[Op]:
    """The writer's requests, each chosen from the state its acknowledged writes made.

    Every request changes something, so each leaves exactly one audit entry.
    """
    first = f"{prefix}-g0"
    i = 0
    while True:
        g, u = f"{prefix}-g{i}", f"{prefix}-u{i}"
        yield _create_group(g)
        previous = f"{prefix}-g{i - 1}"
        yield _create_user(u, prefix.upper(), f"n{i}", sorted({g} | ({previous} & m.groups)))
        members = [x for x in (u, f"{prefix}-u{i - 1}") if x in m.users]
        yield _replace_members(g, members)
        if first in m.groups and (first, u) not in m.members:
            yield _add_member(first, u)
        patched = f"{prefix}-u{i - 1}"
        if i % 4 == 3 and patched in m.users:
            yield _patch_last_name(patched, f"patched{i}")
        gone = f"{prefix}-u{i - 2}"
        if i % 3 == 2 and gone in m.users:
            yield _delete_user(gone)
        dropped = f"{prefix}-g{i - 3}"
        if i % 5 == 4 and dropped in m.groups:
            yield _delete_group(dropped)
        i += 1


@dataclass
class Book:
    """What one writer sent and what it was told."""

    prefix: str
    acked: list[tuple[str, Op]] = field(default_factory=list)
    # The request that had no answer when the server died (at most one).
    in_flight: tuple[str, Op] | None = None
    unexpected: list[str] = field(default_factory=list)

    def model(self, with_in_flight: bool) -> Model:
        m = Model()
        for _, op in self.acked:
            op.apply(m)
        if with_in_flight and self.in_flight is not None:
            self.in_flight[1].apply(m)
        return m

    def request_ids(self, with_in_flight: bool) -> set[str]:
        ids = {rid for rid, _ in self.acked}
        if with_in_flight and self.in_flight is not None:
            ids.add(self.in_flight[0])
        return ids


async def _write(client: httpx.AsyncClient, book: Book) -> None:
    """Send the plan one request at a time until the server is gone."""
    state = Model()
    for seq, op in enumerate(_plan(book.prefix, state)):
        request_id = f"{book.prefix}.{seq}"
        headers = {"X-Request-ID": request_id, "Content-Type": op.content_type}
        try:
            response = await client.request(
                op.method, op.path, json=op.body, headers=headers, timeout=REQUEST_TIMEOUT
            )
        except httpx.TransportError:
            book.in_flight = (request_id, op)
            return
        if response.status_code != op.status:
            book.unexpected.append(
                f"{op.method} {op.path} -> {response.status_code}: {response.text}"
            )
            return
        op.apply(state)
        book.acked.append((request_id, op))


async def _load_then_kill(server: LiveServer) -> list[Book]:
    books = [Book(f"w{k}") for k in range(WRITERS)]
    limits = httpx.Limits(max_connections=WRITERS, max_keepalive_connections=WRITERS)
    async with httpx.AsyncClient(base_url=server.url, limits=limits) as client:
        tasks = [asyncio.create_task(_write(client, book)) for book in books]
        started = time.monotonic()
        try:
            while True:
                await asyncio.sleep(0.05)
                elapsed = time.monotonic() - started
                acked = sum(len(book.acked) for book in books)
                if any(task.done() for task in tasks):
                    break  # a writer stopped on an unexpected answer: kill now, report below
                if elapsed >= LOAD_SECONDS and acked >= MIN_ACKS:
                    break
                if elapsed >= MAX_LOAD_SECONDS:
                    break
            # Mid-load: every writer has a request on its way.
            server.kill()
            _, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 5)
            assert not pending, "writers still waiting after the server was killed"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    unexpected = [line for book in books for line in book.unexpected]
    assert not unexpected, "\n".join(unexpected) + "\n" + server.log_tail()
    acked = sum(len(book.acked) for book in books)
    assert acked >= MIN_ACKS, f"only {acked} writes acknowledged\n{server.log_tail()}"
    return books


def _part(stored: Snapshot, prefix: str) -> Model:
    mine = f"{prefix}-"
    return Model(
        users={u: names for u, names in stored.users.items() if u.startswith(mine)},
        groups={g for g in stored.groups if g.startswith(mine)},
        members={(g, u) for g, u in stored.memberships if g.startswith(mine) or u.startswith(mine)},
    )


def _audited(stored: Snapshot, prefix: str) -> dict[str, list[str]]:
    return {rid: actions for rid, actions in stored.audit.items() if rid.startswith(f"{prefix}.")}


def _settle(stored: Snapshot, books: list[Book]) -> tuple[dict[str, Model], int]:
    """Each writer's state as stored; and how many requests in flight had been committed."""
    models, committed = {}, 0
    for book in books:
        found = _part(stored, book.prefix)
        audited = _audited(stored, book.prefix)
        options = [False, True] if book.in_flight is not None else [False]
        matches = [
            with_in_flight
            for with_in_flight in options
            if found == book.model(with_in_flight)
            and set(audited) == book.request_ids(with_in_flight)
        ]
        assert matches, (
            f"writer {book.prefix}: the database matches neither its acknowledged writes nor"
            f" those plus the request in flight ({book.in_flight and book.in_flight[1].path})\n"
            f"stored: {found}\nacknowledged: {book.model(False)}\n"
            f"audit ids missing: {sorted(book.request_ids(False) - set(audited))}\n"
            f"audit ids extra: {sorted(set(audited) - book.request_ids(True))}"
        )
        with_in_flight = matches[-1]
        committed += with_in_flight
        expected_actions = {rid: [op.action] for rid, op in book.acked}
        if with_in_flight and book.in_flight is not None:
            expected_actions[book.in_flight[0]] = [book.in_flight[1].action]
        assert audited == expected_actions, book.prefix
        models[book.prefix] = book.model(with_in_flight)
    return models, committed


def _check_consistent(stored: Snapshot) -> None:
    if stored.integrity is not None:
        assert stored.integrity == "ok", stored.integrity
    assert stored.orphans == 0
    assert {u for _, u in stored.memberships} <= set(stored.users)
    assert {g for g, _ in stored.memberships} <= stored.groups


async def _check_served(client: httpx.AsyncClient, models: dict[str, Model]) -> None:
    """The restarted server shows each writer's state, from both sides of each membership."""
    checks: list[tuple[str, int, Any]] = []
    for m in models.values():
        for userid, (first, last) in m.users.items():
            record = {
                "userid": userid,
                "first_name": first,
                "last_name": last,
                "groups": m.groups_of(userid),
            }
            checks.append((f"/users/{userid}", 200, record))
        for group in m.groups:
            members = m.members_of(group)
            checks.append((f"/groups/{group}", 200 if members else 404, members or None))
    semaphore = asyncio.Semaphore(8)

    async def check(path: str, status: int, expected: Any) -> str | None:
        async with semaphore:
            response = await client.get(path)
        if response.status_code != status:
            return f"GET {path} -> {response.status_code}, not {status}: {response.text}"
        if expected is not None and response.json() != expected:
            return f"GET {path} -> {response.json()}, not {expected}"
        return None

    failures = [f for f in await asyncio.gather(*(check(*c) for c in checks)) if f]
    assert not failures, "\n".join(failures[:20])


async def _wait_until_sessions_end(database_url: str, within: float = 20.0) -> None:
    """On PostgreSQL, until the dead server's sessions are gone: every transaction it had
    open is then committed or rolled back, and reading the tables sees the final state."""
    if database_url.startswith("sqlite"):
        return  # the process is gone, and with it every lock on the file
    engine = create_async_engine(async_url(database_url))
    deadline = time.monotonic() + within
    try:
        while True:
            async with engine.connect() as connection:
                others = (
                    await connection.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                ).scalar_one()
            if not others:
                return
            assert time.monotonic() < deadline, f"{others} sessions of the killed server remain"
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from served_database(request, tmp_path, "grouped_users_crash")


async def test_acknowledged_writes_survive_sigkill(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = launch(database_url, tmp_path, name="killed")
    try:
        await wait_until_up(server)
        books = await _load_then_kill(server)
    finally:
        server.kill()
    assert server.process.returncode is not None
    await _wait_until_sessions_end(database_url)

    stored = await snapshot(database_url)
    _check_consistent(stored)
    models, committed = _settle(stored, books)
    acked = sum(len(book.acked) for book in books)
    in_flight = sum(book.in_flight is not None for book in books)

    async with serving(database_url, tmp_path, name="restarted") as restarted:
        async with httpx.AsyncClient(base_url=restarted.url, timeout=REQUEST_TIMEOUT) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["revision"] == head_revision()
            await _check_served(client, models)
            response = await client.post(
                "/users/after-crash", json={"first_name": "A", "last_name": "C"}
            )
            assert response.status_code == 201, response.text
            assert (await client.get("/users/after-crash")).status_code == 200
        code = await terminate(restarted)
        assert graceful_exit(code), restarted.log_tail()

    after = await snapshot(database_url)
    _check_consistent(after)
    assert after.users["after-crash"] == ("A", "C")
    assert {u: n for u, n in after.users.items() if u != "after-crash"} == stored.users
    assert after.memberships == stored.memberships

    kind = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    with capsys.disabled():
        print(
            f"\ncrash test ({kind}): {acked} writes acknowledged before SIGKILL, all {acked}"
            f" found complete; {in_flight} requests had no answer: {committed} of them"
            " committed whole, the others not at all"
        )
