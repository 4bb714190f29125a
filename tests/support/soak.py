"""Soak test: many clients against `serve --workers N`, then check that nothing was lost.

    python -m tests.support.soak --seconds 60 --clients 64 --workers 4 --database postgresql

(`make soak`). The PostgreSQL server is $TEST_POSTGRES_URL (or --postgres-url);
a fresh database is created on it and dropped afterwards.

Each client owns its users (`c7-u12`) and groups (`c7-g3`) and knows their
exact expected state: every request on them must get the one answer the
client's own history allows, and at the end the stored state must be what its
acknowledged writes made it. On top, all clients add their users to and
remove them from a few shared groups, rewrite and re-create those: there only
invariants are checked. The mix: creates, reads, PUT and PATCH with
If-Match, single member adds and removes, group rewrites, lists and deletes.

Afterwards: no 5xx, no transport error, every acknowledged write present,
and the membership invariant (each user's `groups` is exactly the set of
groups whose member list contains the user) holds through the API and in
the tables themselves. Prints requests done, answers by status, p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.live_server import (
    LiveServer,
    async_url,
    fresh_postgres_async,
    graceful_exit,
    serving,
    snapshot,
    terminate,
)

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SHARED = [f"shared-{k}" for k in range(4)]
REQUEST_TIMEOUT = 30.0
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
# Kept small so that lists stay short and deletes come round.
MAX_USERS = 24
MAX_GROUPS = 6


@dataclass(frozen=True)
class SoakConfig:
    seconds: float
    clients: int
    workers: int
    database: str = "postgresql"
    seed: int = 20260505


class SoakFailure(AssertionError):
    """The soak found server errors, lost writes or a broken invariant."""


@dataclass
class Stats:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    retried_412: int = 0
    # duration_ms of each request line the server logged
    server_durations: list[float] = field(default_factory=list)

    def percentile(self, fraction: float) -> float:
        return _percentile(self.latencies, fraction)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))] if ordered else 0.0


@dataclass
class SoakReport:
    config: SoakConfig
    elapsed: float
    stats: Stats
    users: int
    groups: int
    memberships: int
    acknowledged: int
    problems: int = 0
    # PostgreSQL's count of deadlocks it broke in the soak database (the app retries them)
    deadlocks: int | None = None

    @property
    def requests(self) -> int:
        return sum(self.stats.statuses.values())

    def render(self) -> str:
        statuses = self.stats.statuses
        errors = {s: n for s, n in sorted(statuses.items()) if s >= 400}
        server_errors = sum(n for s, n in statuses.items() if s >= 500)
        c = self.config
        return "\n".join(
            [
                f"soak: {c.clients} clients for {c.seconds:g} s against serve --workers"
                f" {c.workers} on {c.database}",
                f"requests: {self.requests} ({self.requests / self.elapsed:.0f}/s),"
                f" acknowledged writes: {self.acknowledged}",
                "answers by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())),
                "errors by status: "
                + (", ".join(f"{s}: {n}" for s, n in errors.items()) or "none")
                + f" (5xx: {server_errors}; transport errors:"
                f" {len(self.stats.transport_errors)}; 412 retried: {self.stats.retried_412})",
                f"latency: p50 {self.stats.percentile(0.5) * 1000:.1f} ms,"
                f" p99 {self.stats.percentile(0.99) * 1000:.1f} ms as the clients saw it;"
                f" in the server (its request log) p50"
                f" {_percentile(self.stats.server_durations, 0.5):.1f} ms,"
                f" p99 {_percentile(self.stats.server_durations, 0.99):.1f} ms,"
                f" max {max(self.stats.server_durations, default=0.0):.1f} ms"
                + ("" if self.deadlocks is None else f"; PostgreSQL deadlocks: {self.deadlocks}"),
                f"afterwards: {self.users} users, {self.groups} groups, {self.memberships}"
                " memberships; "
                + (
                    "every acknowledged write present; membership invariant holds (API and SQL)"
                    if not self.problems
                    else f"{self.problems} PROBLEMS"
                ),
            ]
        )


class Stop(Exception):
    """A client saw an answer its history does not allow: its model is no longer exact."""


class SoakClient:
    """One client: its own users and groups, with their exact expected state."""

    def __init__(self, index: int, http: httpx.AsyncClient, stats: Stats, seed: int) -> None:
        self.prefix = f"c{index}"
        self.mine = f"c{index}-"
        self.http = http
        self.stats = stats
        self.rng = random.Random(seed * 1000 + index)
        self.users: dict[str, tuple[str, str]] = {}
        self.groups: set[str] = set()
        self.members: set[tuple[str, str]] = set()  # (own group, own user)
        # Own users ever put into a shared group: others may change their memberships.
        self.exposed: set[str] = set()
        self.deleted: set[str] = set()
        self.serial = 0
        self.acknowledged = 0
        self.problems: list[str] = []

    # --- plumbing ---

    def fresh(self, kind: str) -> str:
        self.serial += 1
        return f"{self.prefix}-{kind}{self.serial}"

    def groups_of(self, userid: str) -> list[str]:
        return sorted(g for g, u in self.members if u == userid)

    def members_of(self, group: str) -> list[str]:
        return sorted(u for g, u in self.members if g == group)

    def fail(self, message: str) -> Stop:
        self.problems.append(f"{self.prefix}: {message}")
        return Stop(message)

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str | int] | None = None,
    ) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self.http.request(
                method, path, json=body, headers=headers, params=params
            )
        except httpx.TransportError as exc:
            self.stats.transport_errors.append(f"{method} {path}: {exc!r}")
            raise self.fail(f"{method} {path}: {exc!r}") from exc
        self.stats.latencies.append(time.perf_counter() - started)
        self.stats.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.stats.server_errors.append(_describe(response))
        return response

    def expect(self, response: httpx.Response, *statuses: int) -> int:
        if response.status_code not in statuses:
            raise self.fail(f"{_describe(response)} (expected {statuses})")
        if 200 <= response.status_code < 300 and response.request.method != "GET":
            self.acknowledged += 1
        return response.status_code

    def expect_code(self, response: httpx.Response, code: str) -> None:
        found = response.json().get("code")
        if found != code:
            raise self.fail(f"{_describe(response)} (expected code {code})")

    def pick_groups(self) -> tuple[list[str], bool]:
        """Some own groups, and now and then a shared one."""
        own = sorted(self.groups)
        chosen = self.rng.sample(own, k=min(len(own), self.rng.randint(0, 2)))
        shared = self.rng.random() < 0.2
        if shared:
            chosen.append(self.rng.choice(SHARED))
        return sorted(chosen), shared

    def check_record(self, userid: str, record: dict[str, Any]) -> None:
        first, last = self.users[userid]
        groups: list[str] = record.get("groups", [])
        own = [g for g in groups if g.startswith(self.mine)]
        others = [g for g in groups if not g.startswith(self.mine)]
        ok = (
            record.get("userid") == userid
            and (record.get("first_name"), record.get("last_name")) == (first, last)
            and own == self.groups_of(userid)
            and groups == sorted(groups)
            and all(g in SHARED for g in others)
            and (not others or userid in self.exposed)
        )
        if not ok:
            raise self.fail(
                f"user {userid} is {record}, expected {first} {last} in {self.groups_of(userid)}"
            )

    def set_groups(self, userid: str, groups: list[str], shared: bool) -> None:
        self.members = {(g, u) for g, u in self.members if u != userid}
        self.members |= {(g, userid) for g in groups if g.startswith(self.mine)}
        if shared:
            self.exposed.add(userid)

    def some_user(self) -> str | None:
        return self.rng.choice(sorted(self.users)) if self.users else None

    def some_group(self) -> str | None:
        return self.rng.choice(sorted(self.groups)) if self.groups else None

    # --- the mix ---

    async def run(self, deadline: float) -> None:
        operations: list[tuple[Callable[[], Awaitable[None]], Callable[[], float]]] = [
            (self.create_user, lambda: 10 if len(self.users) < MAX_USERS else 1),
            (self.create_group, lambda: 5 if len(self.groups) < MAX_GROUPS else 0.5),
            (self.read_user, lambda: 14),
            (self.put_user, lambda: 7),
            (self.patch_user, lambda: 7),
            (self.add_member, lambda: 8),
            (self.remove_member, lambda: 6),
            (self.rewrite_group, lambda: 6),
            (self.read_group, lambda: 8),
            (self.list_members, lambda: 3),
            (self.delete_user, lambda: 4 if len(self.users) > 4 else 0.3),
            (self.delete_group, lambda: 2 if len(self.groups) > 2 else 0.2),
            (self.shared_add, lambda: 6),
            (self.shared_remove, lambda: 4),
            (self.shared_rewrite, lambda: 2),
            (self.shared_read, lambda: 4),
            (self.shared_recreate, lambda: 0.3),
        ]
        try:
            while time.monotonic() < deadline:
                weights = [weight() for _, weight in operations]
                (operation, _), *_ = self.rng.choices(operations, weights=weights)
                await operation()
        except Stop:
            return

    async def create_user(self) -> None:
        userid = self.fresh("u")
        groups, shared = self.pick_groups()
        first, last = self.prefix.upper(), f"n{self.serial}"
        body = {"first_name": first, "last_name": last, "groups": groups}
        response = await self.send("POST", f"/users/{userid}", body=body)
        if shared and response.status_code == 422:
            # The shared group was deleted meanwhile: nothing stored.
            self.expect_code(response, "unknown_groups")
            return
        self.expect(response, 201)
        self.users[userid] = (first, last)
        self.set_groups(userid, groups, shared)
        if response.json() != {"userid": userid, **body}:
            raise self.fail(f"POST /users/{userid} answered {response.json()}")
        if response.headers.get("location") != f"/users/{userid}":
            raise self.fail(f"POST /users/{userid}: Location {response.headers.get('location')}")

    async def create_group(self) -> None:
        name = self.fresh("g")
        response = await self.send("POST", f"/groups/{name}")
        self.expect(response, 201)
        self.groups.add(name)

    async def _get_user(self, userid: str) -> tuple[str, dict[str, Any]]:
        response = await self.send("GET", f"/users/{userid}")
        self.expect(response, 200)
        record: dict[str, Any] = response.json()
        self.check_record(userid, record)
        return response.headers["etag"], record

    async def read_user(self) -> None:
        if self.deleted and self.rng.random() < 0.1:
            gone = self.rng.choice(sorted(self.deleted))
            self.expect(await self.send("GET", f"/users/{gone}"), 404)
            return
        userid = self.some_user()
        if userid is not None:
            await self._get_user(userid)

    async def _conditional_update(self, userid: str, patch: bool) -> None:
        for _ in range(5):
            etag, before = await self._get_user(userid)
            groups, shared = self.pick_groups()
            first, last = self.users[userid]
            body: dict[str, Any]
            headers = {"If-Match": etag}
            if patch:
                method = "PATCH"
                headers |= MERGE_PATCH
                if self.rng.random() < 0.5:
                    last = f"patched{self.serial}"
                    body, groups, shared = {"last_name": last}, [], False
                else:
                    body = {"groups": groups}
            else:
                method = "PUT"
                last = f"put{self.serial}"
                body = {"first_name": first, "last_name": last, "groups": groups}
            self.serial += 1
            response = await self.send(method, f"/users/{userid}", body=body, headers=headers)
            if response.status_code == 412 and userid in self.exposed:
                # A shared group's rewrite changed the user meanwhile: read again.
                self.stats.retried_412 += 1
                continue
            if response.status_code == 422 and shared:
                self.expect_code(response, "unknown_groups")
                return
            self.expect(response, 200)
            self.users[userid] = (first, last)
            if "groups" in body:
                self.set_groups(userid, groups, shared)
                if response.json().get("groups") != groups:
                    raise self.fail(f"{method} /users/{userid} answered {response.json()}")
            self.check_record(userid, response.json())
            # The version moves when the record changes, and only then.
            if (response.headers.get("etag") == etag) != (response.json() == before):
                raise self.fail(
                    f"{method} /users/{userid}: ETag {etag} -> {response.headers.get('etag')}"
                    f" for {before} -> {response.json()}"
                )
            return

    async def put_user(self) -> None:
        userid = self.some_user()
        if userid is not None:
            await self._conditional_update(userid, patch=False)

    async def patch_user(self) -> None:
        userid = self.some_user()
        if userid is not None:
            await self._conditional_update(userid, patch=True)

    async def add_member(self) -> None:
        userid, group = self.some_user(), self.some_group()
        if userid is None or group is None:
            return
        self.expect(await self.send("PUT", f"/groups/{group}/members/{userid}"), 204)
        self.members.add((group, userid))

    async def remove_member(self) -> None:
        if self.members and self.rng.random() < 0.7:
            group, userid = self.rng.choice(sorted(self.members))
            self.expect(await self.send("DELETE", f"/groups/{group}/members/{userid}"), 204)
            self.members.discard((group, userid))
            return
        someone, some_group = self.some_user(), self.some_group()
        if someone is None or some_group is None:
            return
        userid, group = someone, some_group
        response = await self.send("DELETE", f"/groups/{group}/members/{userid}")
        if (group, userid) in self.members:
            self.expect(response, 204)
            self.members.discard((group, userid))
        else:
            self.expect(response, 404)
            self.expect_code(response, "membership_not_found")

    async def _get_group(self, group: str) -> str | None:
        response = await self.send("GET", f"/groups/{group}")
        members = self.members_of(group)
        if not members:
            self.expect(response, 404)
            self.expect_code(response, "group_not_found")
            return None
        self.expect(response, 200)
        if response.json() != members:
            raise self.fail(f"GET /groups/{group} is {response.json()}, expected {members}")
        return response.headers["etag"]

    async def read_group(self) -> None:
        group = self.some_group()
        if group is not None:
            await self._get_group(group)

    async def rewrite_group(self) -> None:
        group = self.some_group()
        if group is None:
            return
        etag = await self._get_group(group)
        own = sorted(self.users)
        chosen = sorted(self.rng.sample(own, k=min(len(own), self.rng.randint(0, 4))))
        headers = {"If-Match": etag} if etag else {}
        response = await self.send("PUT", f"/groups/{group}", body=chosen, headers=headers)
        self.expect(response, 200)
        if response.json() != chosen:
            raise self.fail(f"PUT /groups/{group} answered {response.json()}, sent {chosen}")
        self.members = {(g, u) for g, u in self.members if g != group}
        self.members |= {(group, u) for u in chosen}

    async def list_members(self) -> None:
        group = self.some_group()
        if group is None:
            return
        response = await self.send("GET", "/users", params={"group": group, "limit": 100})
        self.expect(response, 200)
        page = response.json()
        found = [item["userid"] for item in page["items"]]
        if found != self.members_of(group) or page["next_cursor"] is not None:
            raise self.fail(f"GET /users?group={group}: {found}, not {self.members_of(group)}")
        for item in page["items"]:
            self.check_record(item["userid"], item)

    async def delete_user(self) -> None:
        if self.deleted and self.rng.random() < 0.1:
            gone = self.rng.choice(sorted(self.deleted))
            response = await self.send("DELETE", f"/users/{gone}")
            self.expect(response, 404)
            self.expect_code(response, "user_not_found")
            return
        userid = self.some_user()
        if userid is None:
            return
        self.expect(await self.send("DELETE", f"/users/{userid}"), 204)
        del self.users[userid]
        self.members = {(g, u) for g, u in self.members if u != userid}
        self.deleted.add(userid)

    async def delete_group(self) -> None:
        group = self.some_group()
        if group is None:
            return
        self.expect(await self.send("DELETE", f"/groups/{group}"), 204)
        self.groups.discard(group)
        self.members = {(g, u) for g, u in self.members if g != group}

    async def shared_add(self) -> None:
        userid = self.some_user()
        if userid is None:
            return
        self.exposed.add(userid)
        shared = self.rng.choice(SHARED)
        response = await self.send("PUT", f"/groups/{shared}/members/{userid}")
        if self.expect(response, 204, 404) == 404:
            self.expect_code(response, "group_not_found")

    async def shared_remove(self) -> None:
        userid = self.some_user()
        if userid is None:
            return
        shared = self.rng.choice(SHARED)
        response = await self.send("DELETE", f"/groups/{shared}/members/{userid}")
        if self.expect(response, 204, 404) == 404 and response.json()["code"] not in (
            "group_not_found",
            "membership_not_found",
        ):
            raise self.fail(_describe(response))

    async def shared_rewrite(self) -> None:
        own = sorted(self.users)
        chosen = sorted(self.rng.sample(own, k=min(len(own), self.rng.randint(0, 3))))
        self.exposed.update(chosen)
        shared = self.rng.choice(SHARED)
        response = await self.send("PUT", f"/groups/{shared}", body=chosen)
        if self.expect(response, 200, 404) == 200 and response.json() != chosen:
            raise self.fail(f"PUT /groups/{shared} answered {response.json()}, sent {chosen}")

    async def shared_read(self) -> None:
        shared = self.rng.choice(SHARED)
        response = await self.send("GET", f"/groups/{shared}")
        self.expect(response, 200, 404)
        if response.status_code == 200:
            members = response.json()
            if members != sorted(set(members)):
                raise self.fail(f"GET /groups/{shared}: {members} is not sorted and unique")

    async def shared_recreate(self) -> None:
        shared = self.rng.choice(SHARED)
        self.expect(await self.send("DELETE", f"/groups/{shared}"), 204, 404)
        self.expect(await self.send("POST", f"/groups/{shared}"), 201, 409)


def _describe(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {request.url} -> {response.status_code}: {response.text[:300]}"


# --- afterwards -------------------------------------------------------------------------------


async def _pages(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(path, params=params)
        assert response.status_code == 200, _describe(response)
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


@dataclass(frozen=True)
class Seen:
    users: dict[str, dict[str, Any]]
    groups: dict[str, int]  # name -> member_count
    members: dict[str, list[str]]  # name -> members, for every group


async def _through_the_api(client: httpx.AsyncClient) -> Seen:
    users = {item["userid"]: item for item in await _pages(client, "/users")}
    groups = {item["name"]: item["member_count"] for item in await _pages(client, "/groups")}
    semaphore = asyncio.Semaphore(16)

    async def members(name: str) -> tuple[str, list[str]]:
        async with semaphore:
            response = await client.get(f"/groups/{name}")
        if response.status_code == 404:
            return name, []
        assert response.status_code == 200, _describe(response)
        found: list[str] = response.json()
        return name, found

    listed = dict(await asyncio.gather(*(members(name) for name in groups)))
    return Seen(users, groups, listed)


def _invariant_problems(seen: Seen) -> list[str]:
    problems = []
    member_pairs = {(g, u) for g, us in seen.members.items() for u in us}
    user_pairs = {(g, u) for u, record in seen.users.items() for g in record["groups"]}
    if member_pairs != user_pairs:
        problems.append(
            "membership invariant broken through the API: in member lists only"
            f" {sorted(member_pairs - user_pairs)[:10]}, in user records only"
            f" {sorted(user_pairs - member_pairs)[:10]}"
        )
    for name, count in seen.groups.items():
        if count != len(seen.members[name]):
            problems.append(f"group {name}: member_count {count}, members {seen.members[name]}")
        if seen.members[name] != sorted(set(seen.members[name])):
            problems.append(f"group {name}: members not sorted and unique")
    for userid, record in seen.users.items():
        if record["groups"] != sorted(set(record["groups"])):
            problems.append(f"user {userid}: groups not sorted and unique")
    if {u for _, u in member_pairs} - set(seen.users):
        problems.append("a member list names a user that does not exist")
    if {g for g, _ in user_pairs} - set(seen.groups):
        problems.append("a user record names a group that does not exist")
    return problems


def _owned_problems(seen: Seen, clients: list[SoakClient]) -> list[str]:
    problems = []
    for c in clients:
        if c.problems:
            continue  # its model stopped being exact; reported already
        users = {u: r for u, r in seen.users.items() if u.startswith(c.mine)}
        if set(users) != set(c.users):
            problems.append(
                f"{c.prefix}: users missing {sorted(set(c.users) - set(users))},"
                f" unexpected {sorted(set(users) - set(c.users))}"
            )
        for userid in set(users) & set(c.users):
            try:
                c.check_record(userid, users[userid])
            except Stop:
                problems += c.problems
        groups = {g for g in seen.groups if g.startswith(c.mine)}
        if groups != c.groups:
            problems.append(
                f"{c.prefix}: groups missing {sorted(c.groups - groups)},"
                f" unexpected {sorted(groups - c.groups)}"
            )
        for group in groups & c.groups:
            if seen.members[group] != c.members_of(group):
                problems.append(
                    f"{c.prefix}: group {group} has {seen.members[group]},"
                    f" expected {c.members_of(group)}"
                )
    return problems


async def _sql_problems(database_url: str, seen: Seen, clients: list[SoakClient]) -> list[str]:
    stored = await snapshot(database_url)
    problems = []
    if stored.integrity not in (None, "ok"):
        problems.append(f"integrity_check: {stored.integrity}")
    if stored.orphans:
        problems.append(f"{stored.orphans} memberships point at a missing user or group")
    api_users = {u: (r["first_name"], r["last_name"]) for u, r in seen.users.items()}
    if stored.users != api_users:
        problems.append("the users table differs from GET /users")
    if stored.groups != set(seen.groups):
        problems.append("the groups table differs from GET /groups")
    api_pairs = {(g, u) for u, r in seen.users.items() for g in r["groups"]}
    if stored.memberships != api_pairs:
        problems.append(
            "membership invariant broken in SQL: the memberships table differs from the users'"
            f" groups: {sorted(stored.memberships ^ api_pairs)[:10]}"
        )
    by_group: dict[str, list[str]] = {}
    for g, u in stored.memberships:
        by_group.setdefault(g, []).append(u)
    if any(sorted(by_group.get(g, [])) != m for g, m in seen.members.items()):
        problems.append("the memberships table differs from the groups' member lists")
    for c in clients:
        if c.problems:
            continue
        users = {u: n for u, n in stored.users.items() if u.startswith(c.mine)}
        groups = {g for g in stored.groups if g.startswith(c.mine)}
        pairs = {(g, u) for g, u in stored.memberships if g.startswith(c.mine)}
        if users != c.users or groups != c.groups or pairs != c.members:
            problems.append(f"{c.prefix}: the tables differ from its acknowledged writes")
    return problems


async def _deadlocks(database_url: str) -> int | None:
    if database_url.startswith("sqlite"):
        return None
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            )
            return int(found.scalar_one())
    finally:
        await engine.dispose()


def _logged_durations(server: LiveServer) -> list[float]:
    durations = []
    for line in server.stderr_lines():
        if line.startswith("{") and '"grouped_users.requests"' in line:
            entry = json.loads(line)
            if entry.get("request_id") != "startup-probe":
                durations.append(float(entry["duration_ms"]))
    return durations


# --- the run ----------------------------------------------------------------------------------


async def _load(server: LiveServer, config: SoakConfig) -> tuple[list[SoakClient], Stats, float]:
    stats = Stats()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT) as setup:
        for name in SHARED:
            response = await setup.post(f"/groups/{name}")
            assert response.status_code == 201, _describe(response)
    https = [
        httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT, limits=limits)
        for _ in range(config.clients)
    ]
    clients = [SoakClient(k, http, stats, config.seed) for k, http in enumerate(https)]
    started = time.monotonic()
    try:
        deadline = started + config.seconds
        runs = [asyncio.create_task(c.run(deadline)) for c in clients]
        done, pending = await asyncio.wait(runs, timeout=config.seconds + 2 * REQUEST_TIMEOUT)
        for task in pending:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        if pending:
            raise SoakFailure(f"{len(pending)} clients still running after the deadline")
        for task in done:
            if task.exception() is not None:
                raise SoakFailure(f"a client crashed: {task.exception()!r}")
    finally:
        for http in https:
            await http.aclose()
    return clients, stats, time.monotonic() - started


async def run_soak(config: SoakConfig, postgres_server: str | None, directory: Path) -> SoakReport:
    """Start the server over a fresh database, run the load, check; raise SoakFailure."""
    if config.database == "sqlite":
        url = f"sqlite:///{directory / 'soak.db'}"
        return await _soak_on(config, url, directory)
    if not postgres_server:
        raise SoakFailure("no PostgreSQL server: set TEST_POSTGRES_URL")
    async with fresh_postgres_async(postgres_server, "grouped_users_soak") as url:
        return await _soak_on(config, url, directory)


async def _soak_on(config: SoakConfig, url: str, directory: Path) -> SoakReport:
    async with serving(url, directory, workers=config.workers, name="soak") as server:
        clients, stats, elapsed = await _load(server, config)
        async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT) as client:
            seen = await _through_the_api(client)
        problems = [p for c in clients for p in c.problems]
        problems += [f"server error: {e}" for e in stats.server_errors]
        problems += _invariant_problems(seen)
        problems += _owned_problems(seen, clients)
        problems += await _sql_problems(url, seen, clients)
        code = await terminate(server)
        stats.server_durations = _logged_durations(server)
        deadlocks = await _deadlocks(url)
        if not graceful_exit(code):
            problems.append(f"the server did not stop gracefully on SIGTERM (exit status {code})")
        report = SoakReport(
            config,
            elapsed,
            stats,
            users=len(seen.users),
            groups=len(seen.groups),
            memberships=sum(len(m) for m in seen.members.values()),
            acknowledged=sum(c.acknowledged for c in clients),
            problems=len(problems),
            deadlocks=deadlocks,
        )
        if problems:
            listed = "\n".join(list(dict.fromkeys(problems))[:40])
            raise SoakFailure(
                f"{report.render()}\n{len(problems)} problems:\n{listed}\n{server.log_problems()}"
            )
        return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--seed", type=int, default=SoakConfig.seed)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="a PostgreSQL server to create the soak database on ($TEST_POSTGRES_URL)",
    )
    args = parser.parse_args(argv)
    config = SoakConfig(args.seconds, args.clients, args.workers, args.database, args.seed)
    directory = Path(tempfile.mkdtemp(prefix="grouped-users-soak-"))
    try:
        report = asyncio.run(run_soak(config, args.postgres_url, directory))
    except SoakFailure as exc:
        print(f"SOAK FAILED (server logs kept in {directory}):\n{exc}", file=sys.stderr)
        return 1
    print(report.render())
    shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
