"""The audit log: one row per change, in the change's own transaction."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import Table, insert, select, text

from app.api import create_app
from app.auth import Actor, Role
from app.db import Database
from app.models import AuditEntry
from app.repository import audit as audit_repo
from app.repository import groups as group_repo
from app.repository import memberships as membership_repo
from app.repository import tokens as token_repo
from app.repository import users as user_repo
from app.service import audit as audit_service
from app.service import tokens
from app.settings import Settings
from tests.support.helpers import Seen, assert_problem, create_group, create_user, seen_by_get

pytestmark = pytest.mark.anyio

MERGE_PATCH = {"content-type": "application/merge-patch+json"}
USERS, GROUP_PATHS = ["jsmith", "mjones", "bwayne"], ["/groups/admins", "/groups/users"]
JSMITH = {"first_name": "Jsmith", "last_name": "Tester", "userid": "jsmith", "groups": ["admins"]}
ENTRY_FIELDS = {
    *("id", "at", "actor", "action", "resource", "before", "after", "request_id"),
    *("server_request_id", "token_id"),
}
# The server's own request ids: 32 hex digits.
SERVER_ID = re.compile(r"[0-9a-f]{32}")


async def new_token(database: Database, name: str, role: str) -> str:
    async with database.writer() as session:
        _, secret = await tokens.create_token(
            session, actor=Actor("tests", Role.admin), name=name, role=role
        )
    return secret


async def token_id(database: Database, name: str) -> int:
    async with database.reader() as session, session.begin():
        row = await token_repo.by_name(session, name=name)
    assert row is not None
    return row.id


@dataclass
class Api:
    client: httpx.AsyncClient
    database: Database
    actors: dict[str, str]  # role -> the actor name the log must show
    headers: dict[str, dict[str, str]]  # role -> the headers that act as it
    token_ids: dict[str, int]  # role -> the id of the token that acts as it


@pytest.fixture
async def api(
    request: pytest.FixtureRequest, settings: Settings, database: Database
) -> AsyncIterator[Api]:
    """Users jsmith (in admins) and mjones; groups admins and users; token old (reader)."""
    mode = getattr(request, "param", "anonymous")
    actors = {"writer": "anonymous", "admin": "anonymous"}
    headers: dict[str, dict[str, str]] = {"writer": {}, "admin": {}}
    token_ids: dict[str, int] = {}
    if mode == "tokens":
        settings = settings.model_copy(update={"auth": "required"})
        for role in actors:
            actors[role] = f"ci-{role}"
            secret = await new_token(database, actors[role], role)
            headers[role] = {"Authorization": f"Bearer {secret}"}
            token_ids[role] = await token_id(database, actors[role])
    await new_token(database, "old", "reader")
    app = create_app(settings.model_copy(update={"max_body_bytes": 1024}), database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=headers["admin"]
    ) as client:
        await create_group(client, "admins")
        await create_group(client, "users")
        await create_user(client, "jsmith", ["admins"])
        await create_user(client, "mjones")
        yield Api(client, database, actors, headers, token_ids)


async def rows_after(database: Database, last: int) -> list[AuditEntry]:
    async with database.reader() as session, session.begin():
        query = select(AuditEntry).where(AuditEntry.id > last).order_by(AuditEntry.id)
        return list((await session.scalars(query)).all())


async def last_id(database: Database) -> int:
    rows = await rows_after(database, 0)
    return rows[-1].id if rows else 0


def as_shown(resource: str, stored: Any) -> Any:
    """A token's times compare as instants: "...Z" and "...+00:00" are the same moment."""
    if not (stored and resource.startswith("tokens/")):
        return stored
    return {
        k: datetime.fromisoformat(v) if k.endswith("_at") and v else v for k, v in stored.items()
    }


async def view(client: httpx.AsyncClient, resource: str) -> Any:
    """The resource as the API shows it, or None where there is none."""
    kind, name, *member = resource.split("/")
    if kind == "users":
        response = await client.get(f"/users/{name}")
        return response.json() if response.status_code == 200 else None
    if kind == "tokens":
        listed = {t["name"]: t for t in (await client.get("/tokens")).json()}
        return as_shown(resource, listed.get(name))
    items = (await client.get("/groups", params={"limit": 1000})).json()["items"]
    if name not in {item["name"] for item in items}:
        return None
    response = await client.get(f"/groups/{name}")
    members: list[str] = response.json() if response.status_code == 200 else []
    if member:
        return {"group": name, "userid": member[1]} if member[1] in members else None
    return members


async def snapshot(client: httpx.AsyncClient) -> Seen:
    """Everything GET shows, ETags included, but when tokens were last used."""
    paths = ["/users", "/groups", *(f"/users/{u}" for u in USERS), *GROUP_PATHS]
    seen = await seen_by_get(client, paths)
    listed = [{**t, "last_used_at": None} for t in (await client.get("/tokens")).json()]
    return seen | {"/tokens": (200, listed, None)}


@dataclass(frozen=True)
class Change:
    method: str
    url: str
    body: Any
    status: int
    action: str
    resource: str
    before: Any = None
    after: Any = None
    role: str = "writer"


SHOWN = "as the API shows it"  # compared with `view` only (tokens: created at run time)
RENAMED = {**JSMITH, "first_name": "Joseph", "groups": ["users"]}
BWAYNE = {"first_name": "Bruce", "last_name": "Wayne", "groups": ["users", "admins"]}
CHANGES = [
    Change("POST", "/users/bwayne", BWAYNE, 201, "user.create", "users/bwayne", None,
           {**BWAYNE, "userid": "bwayne", "groups": ["admins", "users"]}),
    Change("PUT", "/users/jsmith", RENAMED, 200, "user.replace", "users/jsmith", JSMITH, RENAMED),
    Change("PATCH", "/users/jsmith", {"last_name": "Smythe"}, 200, "user.patch", "users/jsmith",
           JSMITH, {**JSMITH, "last_name": "Smythe"}),
    Change("DELETE", "/users/jsmith", None, 204, "user.delete", "users/jsmith", JSMITH, None),
    Change("POST", "/groups/staff", None, 201, "group.create", "groups/staff", None, []),
    Change("PUT", "/groups/admins", ["mjones", "jsmith"], 200, "group.replace_members",
           "groups/admins", ["jsmith"], ["jsmith", "mjones"]),
    Change("DELETE", "/groups/admins", None, 204, "group.delete", "groups/admins", ["jsmith"]),
    Change("PUT", "/groups/users/members/mjones", None, 204, "membership.add",
           "groups/users/members/mjones", None, {"group": "users", "userid": "mjones"}),
    Change("DELETE", "/groups/admins/members/jsmith", None, 204, "membership.remove",
           "groups/admins/members/jsmith", {"group": "admins", "userid": "jsmith"}, None),
    Change("POST", "/tokens", {"name": "ci", "role": "writer"}, 201, "token.create", "tokens/ci",
           None, SHOWN, "admin"),
    Change("DELETE", "/tokens/old", None, 204, "token.revoke", "tokens/old", SHOWN, None, "admin"),
]  # fmt: skip


async def send(api: Api, change: Change) -> httpx.Response:
    headers = {**api.headers[change.role], **(MERGE_PATCH if change.method == "PATCH" else {})}
    body = {} if change.body is None else {"json": change.body}
    return await api.client.request(change.method, change.url, headers=headers, **body)


@pytest.mark.parametrize("api", ["anonymous", "tokens"], indirect=True)
@pytest.mark.parametrize("change", CHANGES, ids=lambda c: f"{c.method} {c.url}")
async def test_each_change_writes_exactly_one_entry(api: Api, change: Change) -> None:
    shown_before = await view(api.client, change.resource)
    last = await last_id(api.database)
    started = datetime.now(UTC)
    response = await send(api, change)
    finished = datetime.now(UTC)
    assert response.status_code == change.status, response.text

    [row] = await rows_after(api.database, last)
    assert (row.action, row.resource) == (change.action, change.resource)
    assert row.actor == api.actors[change.role]
    assert row.request_id == response.headers["x-request-id"]
    # Without a client id, the one the answer carries is the server's own.
    assert row.server_request_id == row.request_id
    assert SERVER_ID.fullmatch(row.server_request_id)
    assert row.token_id == api.token_ids.get(change.role)
    shown_after = await view(api.client, change.resource)
    assert as_shown(change.resource, row.before) == shown_before
    assert as_shown(change.resource, row.after) == shown_after
    for expected, stored in [(change.before, row.before), (change.after, row.after)]:
        assert expected == SHOWN or stored == expected
    if response.status_code in (200, 201) and change.resource.startswith("users/"):
        assert row.after == response.json()
    if change.action == "token.create":
        assert response.json()["token"] not in json.dumps([row.before, row.after])

    page = await api.client.get("/audit", headers=api.headers["admin"], params={"limit": 1})
    assert page.status_code == 200, page.text
    [entry] = page.json()["items"]
    assert set(entry) == ENTRY_FIELDS
    assert {k: v for k, v in entry.items() if k != "at"} == {
        k: getattr(row, k) for k in ENTRY_FIELDS - {"at"}
    }
    at = datetime.fromisoformat(entry["at"])
    assert at.utcoffset() == timedelta(0)
    assert started <= at <= finished


async def test_client_request_id_is_recorded(api: Api) -> None:
    last = await last_id(api.database)
    response = await api.client.post("/groups/staff", headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 201, response.text
    assert [row.request_id for row in await rows_after(api.database, last)] == ["trace-42"]


async def test_requests_sharing_a_client_id_keep_their_own_server_ids(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    last = await last_id(api.database)
    with caplog.at_level(logging.INFO, logger="grouped_users.requests"):
        for name in ("staff", "ops"):
            response = await api.client.post(f"/groups/{name}", headers={"X-Request-ID": "t-1"})
            assert response.status_code == 201, response.text
            assert response.headers["x-request-id"] == "t-1"
    rows = await rows_after(api.database, last)
    assert [(row.resource, row.request_id) for row in rows] == [
        ("groups/staff", "t-1"),
        ("groups/ops", "t-1"),
    ]
    server_ids = [row.server_request_id for row in rows]
    assert all(SERVER_ID.fullmatch(str(found)) for found in server_ids), server_ids
    assert len(set(server_ids)) == 2
    # Each entry leads to its own request's log line.
    logged = {
        getattr(record, "server_request_id", None): getattr(record, "path", None)
        for record in caplog.records
        if getattr(record, "request_id", None) == "t-1"
    }
    assert logged == {server_ids[0]: "/groups/staff", server_ids[1]: "/groups/ops"}
    entries = (await api.client.get("/audit", params={"limit": 2})).json()["items"]
    assert [e["server_request_id"] for e in entries] == server_ids[::-1]


@pytest.mark.parametrize("api", ["tokens"], indirect=True)
async def test_a_reused_token_name_keeps_apart_by_token_id(api: Api) -> None:
    admin = api.headers["admin"]
    first = await api.client.post("/tokens", json={"name": "ci", "role": "writer"}, headers=admin)
    assert first.status_code == 201, first.text
    revoked = await api.client.delete("/tokens/ci", headers=admin)
    assert revoked.status_code == 204, revoked.text
    second = await api.client.post("/tokens", json={"name": "ci", "role": "writer"}, headers=admin)
    assert second.status_code == 201, second.text
    ids = [first.json()["id"], second.json()["id"]]
    assert ids[0] != ids[1]
    listed = (await api.client.get("/tokens", headers=admin)).json()
    assert [t["id"] for t in listed if t["name"] == "ci"] == [ids[1]]

    last = await last_id(api.database)
    for created, group in zip([first, second], ["one", "two"], strict=True):
        bearer = {"Authorization": f"Bearer {created.json()['token']}"}
        response = await api.client.post(f"/groups/{group}", headers=bearer)
        # The first token was revoked: only the second acts.
        assert response.status_code == (401 if group == "one" else 201), response.text
    await api.client.post("/groups/three", headers=admin)
    rows = await rows_after(api.database, last)
    assert [(row.actor, row.token_id, row.resource) for row in rows] == [
        ("ci", ids[1], "groups/two"),
        ("ci-admin", api.token_ids["admin"], "groups/three"),
    ]
    # The token's own entries carry its id too.
    made = await api.client.get("/audit", params={"resource": "tokens/ci"}, headers=admin)
    snapshots = [(e["action"], (e["after"] or e["before"])["id"]) for e in made.json()["items"]]
    assert snapshots == [
        ("token.create", ids[1]),
        ("token.revoke", ids[0]),
        ("token.create", ids[0]),
    ]


BAD_IF_MATCH = {"headers": {"If-Match": '"999.999"'}}
UNCHANGED = [
    ("PUT", "/groups/admins/members/jsmith", {}, 204, None),  # a member already: idempotent
    ("PUT", "/users/nobody", {"json": JSMITH | {"userid": "nobody"}}, 404, "user_not_found"),
    ("PATCH", "/users/nobody", {"json": {"last_name": "X"}, "headers": MERGE_PATCH}, 404,
     "user_not_found"),
    ("DELETE", "/users/nobody", {}, 404, "user_not_found"),
    ("PUT", "/groups/nogroup", {"json": ["jsmith"]}, 404, "group_not_found"),
    ("DELETE", "/groups/nogroup", {}, 404, "group_not_found"),
    ("PUT", "/groups/nogroup/members/jsmith", {}, 404, "group_not_found"),
    ("PUT", "/groups/users/members/nobody", {}, 404, "user_not_found"),
    ("DELETE", "/groups/users/members/jsmith", {}, 404, "membership_not_found"),
    ("DELETE", "/tokens/nope", {}, 404, "token_not_found"),
    ("POST", "/users/jsmith", {"json": JSMITH}, 409, "user_exists"),
    ("POST", "/groups/admins", {}, 409, "group_exists"),
    ("POST", "/tokens", {"json": {"name": "old", "role": "admin"}}, 409, "token_exists"),
    ("PUT", "/users/jsmith", {"json": RENAMED, **BAD_IF_MATCH}, 412, "precondition_failed"),
    ("PATCH", "/users/jsmith", {"json": {"groups": []}, "headers": {**MERGE_PATCH,
     "If-Match": '"999.999"'}}, 412, "precondition_failed"),
    ("DELETE", "/users/jsmith", BAD_IF_MATCH, 412, "precondition_failed"),
    ("PUT", "/groups/admins", {"json": ["mjones"], **BAD_IF_MATCH}, 412, "precondition_failed"),
    ("DELETE", "/groups/admins", BAD_IF_MATCH, 412, "precondition_failed"),
    ("POST", "/users/bwayne", {"json": {**BWAYNE, "groups": ["admins", "ghosts"]}}, 422,
     "unknown_groups"),
    ("PUT", "/users/jsmith", {"json": {**RENAMED, "groups": ["users", "ghosts"]}}, 422,
     "unknown_groups"),
    ("PUT", "/groups/admins", {"json": ["mjones", "ghost"]}, 422, "unknown_users"),
    ("PUT", "/groups/admins", {"json": ["mjones", "mjones"]}, 422, "invalid_member_list"),
    ("POST", "/users/B%20Wayne", {"json": BWAYNE}, 422, "invalid_name"),
    ("POST", "/groups/staff", {"json": ["jsmith"]}, 422, "non_empty_body"),
    ("PATCH", "/users/jsmith", {"json": {"first_name": None}, "headers": MERGE_PATCH}, 422,
     "invalid_record"),
    ("POST", "/tokens", {"json": {"name": "ci", "role": "root"}}, 422, "invalid_token_request"),
    ("POST", "/users/bwayne", {"content": b'{"first_name": '}, 400, "malformed_json"),
    ("PUT", "/groups/admins", {"content": b"[\"mjones\""}, 400, "malformed_json"),
    ("POST", "/users/bwayne", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415,
     "unsupported_media_type"),
    ("PUT", "/groups/admins", {"json": ["mjones"] * 200}, 413, "body_too_large"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "extra", "status", "code"), UNCHANGED)
async def test_a_rejected_or_idle_change_writes_nothing_and_changes_nothing(
    api: Api, method: str, url: str, extra: dict[str, Any], status: int, code: str | None
) -> None:
    before = await snapshot(api.client)
    last = await last_id(api.database)
    response = await api.client.request(method, url, **extra)
    assert response.status_code == status, response.text
    if code is not None:
        assert_problem(response, status, code)
    assert await rows_after(api.database, last) == []
    assert await snapshot(api.client) == before


def fail_after(original: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    async def failing(*args: Any, **kwargs: Any) -> Any:
        await original(*args, **kwargs)
        raise RuntimeError("forced failure after the statement ran")

    return failing


FAILURES = [
    (CHANGES[0], user_repo, "insert_user"),
    (CHANGES[1], user_repo, "update_user"),
    (Change("PATCH", "/users/jsmith", {"first_name": "Jo", "groups": ["users"]}, 200, "", ""),
     membership_repo, "change_for_user"),
    (CHANGES[3], user_repo, "delete_user"),
    (CHANGES[4], group_repo, "insert_group"),
    (CHANGES[5], membership_repo, "add_for_group"),
    (CHANGES[6], group_repo, "delete_group"),
    (CHANGES[7], membership_repo, "add_one"),
    (CHANGES[8], membership_repo, "remove"),
    (CHANGES[9], token_repo, "insert_token"),
    (CHANGES[10], token_repo, "delete_token"),
]  # fmt: skip


@pytest.mark.parametrize("at", ["mid-change", "audit insert"])
@pytest.mark.parametrize(
    ("change", "module", "function"), FAILURES, ids=[f"{c.method} {c.url}" for c, _, _ in FAILURES]
)
async def test_a_failure_mid_transaction_writes_nothing_and_changes_nothing(
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
    change: Change,
    module: object,
    function: str,
    at: str,
) -> None:
    before = await snapshot(api.client)
    last = await last_id(api.database)
    if at == "audit insert":
        module, function = audit_repo, "append"
    monkeypatch.setattr(module, function, fail_after(getattr(module, function)))
    assert_problem(await send(api, change), 500, "internal_error")
    monkeypatch.undo()
    assert await rows_after(api.database, last) == []
    assert await snapshot(api.client) == before
    # And the same change goes through once nothing fails.
    assert (await send(api, change)).status_code == change.status


async def seed(database: Database, count: int) -> None:
    """`count` entries, i = 0..count-1: actor a{i % 3}, resource users/u{i % 5}."""
    async with database.writer() as session, session.begin():
        for i in range(count):
            actor = Actor(f"a{i % 3}", Role.admin, f"req-{i}")
            resource = f"users/u{i % 5}"
            await audit_service.record(
                session, actor=actor, action="test.seed", resource=resource, after={"i": i}
            )


async def walk(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every entry, page by page; checks that no page is longer than asked."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page_params = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/audit", params=page_params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= params.get("limit", 100)
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        assert len(page["items"]) == params.get("limit", 100)


def seeded(entries: list[dict[str, Any]]) -> list[int]:
    return [e["after"]["i"] for e in entries if e["action"] == "test.seed"]


@pytest.mark.parametrize("limit", [100, 1, 249, 250, 1000])
async def test_pages_are_newest_first_without_duplicates_or_omissions(api: Api, limit: int) -> None:
    await seed(api.database, 250)
    entries = await walk(api.client, limit=limit)
    assert seeded(entries) == list(range(249, -1, -1))
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == len(ids) == len(await rows_after(api.database, 0))
    default = (await api.client.get("/audit")).json()
    assert [e["id"] for e in default["items"]] == ids[:100]


async def test_new_entries_do_not_shift_the_pages_after_them(api: Api) -> None:
    await seed(api.database, 250)
    first = (await api.client.get("/audit", params={"limit": 100})).json()
    await seed(api.database, 30)
    rest = await walk(api.client, limit=100, cursor=first["next_cursor"])
    assert seeded(first["items"] + rest) == list(range(249, -1, -1))


FILTERS = [
    ({"resource": "users/u1"}, lambda i: i % 5 == 1),
    ({"actor": "a2"}, lambda i: i % 3 == 2),
    ({"resource": "users/u1", "actor": "a1"}, lambda i: i % 15 == 1),
    ({"resource": "users/nobody"}, lambda i: False),
]


@pytest.mark.parametrize(("query", "wanted"), FILTERS, ids=["resource", "actor", "both", "none"])
async def test_filters_resource_and_actor(
    api: Api, query: dict[str, str], wanted: Callable[[int], bool]
) -> None:
    await seed(api.database, 250)
    entries = await walk(api.client, limit=20, **query)
    assert seeded(entries) == [i for i in range(249, -1, -1) if wanted(i)]
    assert all(e["action"] == "test.seed" for e in entries)


ZONES = {
    "Z": UTC,
    "+00:00": UTC,
    "+02:00": timezone(timedelta(hours=2)),
    "-05:30": timezone(-timedelta(hours=5, minutes=30)),
}


@pytest.mark.parametrize("offset", ZONES)
async def test_filter_since_with_a_time_zone(api: Api, offset: str) -> None:
    await seed(api.database, 250)
    everything = await walk(api.client, limit=1000)
    pivot = datetime.fromisoformat(everything[100]["at"])
    since = pivot.astimezone(ZONES[offset]).isoformat()
    since = since.replace("+00:00", "Z") if offset == "Z" else since
    assert since.endswith(offset)
    expected = [e for e in everything if datetime.fromisoformat(e["at"]) >= pivot]
    assert 100 < len(expected) < len(everything)
    assert await walk(api.client, limit=30, since=since) == expected
    both = await walk(api.client, since=since, resource="users/u3", actor="a0")
    assert both == [e for e in expected if (e["resource"], e["actor"]) == ("users/u3", "a0")]
    assert both
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert await walk(api.client, since=future) == []


def _forged(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_CURSORS = {
    "garbage": "garbage!!",
    "empty": "",
    "audit-abc": _forged("audit:abc"),
    "audit-huge-id": _forged("audit:" + "9" * 40),
    "of-users": "users",
}


@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS)
async def test_a_bad_cursor_is_a_422(api: Api, cursor: str) -> None:
    await seed(api.database, 3)
    if cursor == "users":  # a cursor that another list gave out
        cursor = (await api.client.get("/users", params={"limit": 1})).json()["next_cursor"]
    response = await api.client.get("/audit", params={"cursor": cursor})
    assert_problem(response, 422, "invalid_cursor")


BAD_SINCE = [
    "yesterday",
    # Unix times: no longer taken for one.
    "0.5",
    "-1",
    "1700000000",
    # Out of range once in UTC: each was a 500.
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2024-01-01\u00e900:00:00",
    "2024-13-01T00:00:00Z",
]


@pytest.mark.parametrize(
    "query",
    [{"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, *({"since": s} for s in BAD_SINCE)],
)
async def test_a_bad_limit_or_since_is_a_422(api: Api, query: dict[str, str]) -> None:
    assert_problem(await api.client.get("/audit", params=query), 422, "invalid_query")


async def test_since_without_an_offset_is_utc(api: Api) -> None:
    await seed(api.database, 20)
    everything = await walk(api.client, limit=1000)
    pivot = datetime.fromisoformat(everything[10]["at"])
    naive = pivot.astimezone(UTC).replace(tzinfo=None).isoformat()
    expected = [e for e in everything if datetime.fromisoformat(e["at"]) >= pivot]
    assert await walk(api.client, since=naive) == expected


async def test_the_audit_log_needs_an_admin(settings: Settings, database: Database) -> None:
    app = create_app(settings.model_copy(update={"auth": "required"}), database=database)
    bearer = {role: await new_token(database, f"t-{role}", role) for role in Role.__members__}
    statuses = {"reader": 403, "writer": 403, "admin": 200}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as client:
        for role, status in statuses.items():
            headers = {"Authorization": f"Bearer {bearer[role]}"}
            response = await client.get("/audit", headers=headers)
            assert response.status_code == status, (role, response.text)
            if status == 403:
                assert_problem(response, 403, "forbidden")
        for headers in [{}, {"Authorization": "Bearer gu_not-a-token"}]:
            response = await client.get("/audit", headers=headers)
            assert_problem(response, 401, "unauthenticated")
            assert response.headers["www-authenticate"].startswith("Bearer")


def _cli(database: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPED_USERS_")}
    env["GROUPED_USERS_DATABASE_URL"] = f"sqlite:///{database}"
    result = subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_cli_prints_json_lines_newest_first(tmp_path: Path) -> None:
    database = tmp_path / "gu.db"
    _cli(database, "db", "upgrade")
    secrets = [_cli(database, "token", "create", "--name", n, "--role", "writer") for n in "xy"]
    _cli(database, "token", "revoke", "x")

    lines = _cli(database, "audit").splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["action"], e["resource"]) for e in entries] == [
        ("token.revoke", "tokens/x"),
        ("token.create", "tokens/y"),
        ("token.create", "tokens/x"),
    ]
    assert all(set(e) == ENTRY_FIELDS and e["actor"].startswith("cli:") for e in entries)
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert entries[0]["before"]["name"] == "x"
    assert entries[0]["after"] is None
    assert all(datetime.fromisoformat(e["at"]).utcoffset() == timedelta(0) for e in entries)
    assert not any(secret.strip() in "".join(lines) for secret in secrets)

    def actions(*args: str) -> list[str]:
        output = _cli(database, "audit", *args)
        return [json.loads(line)["resource"] for line in output.splitlines()]

    assert actions("--resource", "tokens/x") == ["tokens/x", "tokens/x"]
    assert actions("--limit", "1") == ["tokens/x"]
    assert actions("--actor", entries[0]["actor"]) == ["tokens/x", "tokens/y", "tokens/x"]
    assert actions("--actor", "nobody") == []
    assert actions("--since", entries[1]["at"]) == ["tokens/x", "tokens/y"]


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "0.5"],
        ["--since", "0001-01-01T00:00:00+14:00"],
        ["--limit", "-3"],
        ["--limit", "99999999999999999999999"],
    ],
)
def test_the_cli_refuses_a_bad_since_or_limit_without_a_traceback(
    tmp_path: Path, args: list[str]
) -> None:
    database = tmp_path / "gu.db"
    _cli(database, "db", "upgrade")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPED_USERS_")}
    env["GROUPED_USERS_DATABASE_URL"] = f"sqlite:///{database}"
    result = subprocess.run(
        [sys.executable, "-m", "app", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert args[0] in result.stderr
    assert "Traceback" not in result.stderr


async def test_entries_sent_to_the_driver_are_stored_as_a_compiled_insert_stores_them(
    database: Database,
) -> None:
    """driver_rows converts each value itself: the stored text must not differ."""
    entry = {
        "at": datetime(2026, 12, 7, 17, 30, 1, 123456, tzinfo=UTC),
        "actor": "admin",
        "action": "user.create",
        "resource": "users/jsmith",
        "before": None,
        "after": {"userid": "jsmith", "groups": ["admins"], "note": "é\"'"},
        "request_id": "r-1",
        "server_request_id": None,
        "token_id": None,
    }
    table = cast(Table, AuditEntry.__table__)
    columns = ", ".join(name for name in entry)
    async with database.engine.begin() as connection:
        await connection.run_sync(
            lambda sync: sync.exec_driver_sql(*audit_repo.driver_rows(sync.dialect, [entry]))
        )
        await connection.execute(insert(table), [entry])
        stored = (await connection.execute(text(f"SELECT {columns} FROM audit ORDER BY id"))).all()
    assert len(stored) == 2
    assert stored[0] == stored[1]
