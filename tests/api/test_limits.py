"""Abuse limits: list lengths, a time limit per request, security headers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api import create_app
from app.auth import Actor, Role
from app.db import Database
from app.repository import audit as audit_repo
from app.repository import groups as group_repo
from app.repository import memberships as membership_repo
from app.repository import users as user_repo
from app.service import tokens
from app.service import users as user_service
from app.settings import Settings
from tests.support.helpers import Seen, assert_problem, create_group, create_user, seen_by_get
from tests.support.sockets import free_port

pytestmark = pytest.mark.anyio

LIMIT = 3
MERGE_PATCH = {"content-type": "application/merge-patch+json"}
USERS = ["u1", "u2", "u3", "u4", "jsmith", "newbie"]
GROUPS = ["g1", "g2", "g3", "g4"]


def client_of(settings: Settings, database: Database, **update: Any) -> httpx.AsyncClient:
    app = create_app(settings.model_copy(update=update), database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """Lists of at most 3; users u1..u4, jsmith (in g1); groups g1..g4, g1 with member u1."""
    async with client_of(settings, database, max_list_length=LIMIT) as client:
        for name in GROUPS:
            await create_group(client, name)
        for userid in USERS[:4]:
            await create_user(client, userid)
        await create_user(client, "jsmith", ["g1"])
        assert (await client.put("/groups/g1/members/u1")).status_code == 204
        yield client


async def snapshot(client: httpx.AsyncClient) -> Seen:
    """Both sides (users' groups, groups' members) with ETags, and the audit log."""
    paths = ["/users", "/groups", "/audit", *(f"/users/{u}" for u in USERS)]
    return await seen_by_get(client, [*paths, *(f"/groups/{g}" for g in GROUPS)])


def record(groups: list[str]) -> dict[str, Any]:
    return {"first_name": "Joe", "last_name": "Smith", "groups": groups}


# (method, url, the body for a list, the list's field in errors, success status)
LISTS: list[tuple[str, str, Callable[[list[str]], Any], str, int]] = [
    ("PUT", "/groups/g2", lambda names: names, "members", 200),
    ("POST", "/users/newbie", record, "groups", 201),
    ("PUT", "/users/jsmith", record, "groups", 200),
    ("PATCH", "/users/jsmith", lambda names: {"groups": names}, "groups", 200),
]
LIST_IDS = [f"{method} {url}" for method, url, *_ in LISTS]


def names_for(url: str, count: int) -> list[str]:
    """`count` distinct names of what the list holds: users for a group, groups for a user."""
    prefix = "u" if url.startswith("/groups") else "g"
    return [f"{prefix}{n}" for n in range(1, count + 1)]


async def send(client: httpx.AsyncClient, method: str, url: str, body: Any) -> httpx.Response:
    headers = MERGE_PATCH if method == "PATCH" else {}
    return await client.request(method, url, json=body, headers=headers)


@pytest.mark.parametrize("count", [LIMIT + 1, 1000])
@pytest.mark.parametrize(("method", "url", "body", "field", "ok"), LISTS, ids=LIST_IDS)
async def test_a_list_longer_than_the_limit_is_a_clear_422_and_stores_nothing(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: Callable[[list[str]], Any],
    field: str,
    ok: int,
    count: int,
) -> None:
    before = await snapshot(client)
    response = await send(client, method, url, body(names_for(url, count)))
    problem = assert_problem(response, 422, "list_too_long")
    assert field in problem["detail"]
    assert str(count) in problem["detail"]
    assert str(LIMIT) in problem["detail"]
    [error] = problem["errors"]
    assert error["field"] == field
    assert str(LIMIT) in error["message"]
    assert await snapshot(client) == before


@pytest.mark.parametrize(("method", "url", "body", "field", "ok"), LISTS, ids=LIST_IDS)
async def test_a_list_of_exactly_the_limit_is_accepted(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: Callable[[list[str]], Any],
    field: str,
    ok: int,
) -> None:
    names = names_for(url, LIMIT)
    response = await send(client, method, url, body(names))
    assert response.status_code == ok, response.text
    shown = (await client.get(url)).json()
    assert (shown if field == "members" else shown["groups"]) == names


def stall_after(original: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    async def stalled(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        await asyncio.sleep(5)
        return result

    return stalled


STALLS = [
    ("PUT", "/users/jsmith", record(["g2"]), user_repo, "update_user", 200),
    ("PATCH", "/users/jsmith", {"groups": []}, membership_repo, "change_for_user", 200),
    ("POST", "/users/newbie", record(["g1", "g2"]), user_repo, "insert_user", 201),
    ("DELETE", "/users/jsmith", None, user_repo, "delete_user", 204),
    ("PUT", "/groups/g1", ["u2", "u3"], membership_repo, "add_for_group", 200),
    ("DELETE", "/groups/g1", None, group_repo, "delete_group", 204),
    ("PUT", "/groups/g2/members/u2", None, membership_repo, "add_one", 204),
    ("POST", "/groups/g9", None, audit_repo, "append", 201),
]


@pytest.mark.parametrize(
    ("method", "url", "body", "module", "function", "ok"),
    STALLS,
    ids=[f"{method} {url}" for method, url, *_ in STALLS],
)
async def test_a_request_over_its_time_limit_is_a_503_and_changes_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    url: str,
    body: Any,
    module: object,
    function: str,
    ok: int,
) -> None:
    before = await snapshot(client)
    monkeypatch.setattr(module, function, stall_after(getattr(module, function)))
    # Only this client has the short limit: the snapshots may take their time.
    async with client_of(settings, database, request_timeout_seconds=0.2) as hasty:
        response = await send(hasty, method, url, body)
    problem = assert_problem(response, 503, "request_timeout")
    assert "nothing changed" in problem["detail"]
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["x-content-type-options"] == "nosniff"
    monkeypatch.undo()
    assert await snapshot(client) == before
    # Nothing of it is left behind, no lock either: the same change goes through now.
    assert (await send(client, method, url, body)).status_code == ok


async def boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("boom")


Request = Callable[[httpx.AsyncClient, pytest.MonkeyPatch], Awaitable[httpx.Response]]


async def _not_modified(client: httpx.AsyncClient, _: pytest.MonkeyPatch) -> httpx.Response:
    tag = (await client.get("/users/jsmith")).headers["etag"]
    return await client.get("/users/jsmith", headers={"If-None-Match": tag})


async def _failing(client: httpx.AsyncClient, patch: pytest.MonkeyPatch) -> httpx.Response:
    patch.setattr(user_service, "get_user", boom)
    return await client.get("/users/jsmith")


async def _stalled(client: httpx.AsyncClient, patch: pytest.MonkeyPatch) -> httpx.Response:
    patch.setattr(user_repo, "update_user", stall_after(user_repo.update_user))
    return await client.put("/users/jsmith", json=record(["g1"]))


RESPONSES: dict[str, tuple[int, Request]] = {
    "200": (200, lambda c, _: c.get("/users/jsmith")),
    "201": (201, lambda c, _: c.post("/groups/g9")),
    "204": (204, lambda c, _: c.put("/groups/g2/members/u1")),
    "304": (304, _not_modified),
    "404 user": (404, lambda c, _: c.get("/users/nobody")),
    "404 route": (404, lambda c, _: c.get("/nowhere")),
    "405": (405, lambda c, _: c.delete("/users")),
    "422": (422, lambda c, _: c.put("/groups/g1", json=["Not A Name"])),
    "500": (500, _failing),
    "503": (503, _stalled),
}


@pytest.mark.parametrize("auth", ["disabled", "required"])
@pytest.mark.parametrize(("status", "call"), RESPONSES.values(), ids=RESPONSES)
async def test_security_headers_on_every_response(
    client: httpx.AsyncClient,
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    auth: str,
    status: int,
    call: Request,
) -> None:
    async with database.writer() as session:
        _, secret = await tokens.create_token(
            session, actor=Actor("tests", Role.admin), name="headers", role="admin"
        )
    # A short time limit only where it is the point: other answers may take their time.
    seconds = 0.2 if status == 503 else settings.request_timeout_seconds
    checked = client_of(settings, database, auth=auth, request_timeout_seconds=seconds)
    checked.headers["Authorization"] = f"Bearer {secret}"
    async with checked:
        response = await call(checked, monkeypatch)
        unauthenticated = await checked.get("/users/jsmith", headers={"Authorization": ""})
    assert response.status_code == status, response.text
    for answer in [response, *([unauthenticated] if auth == "required" else [])]:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "server" not in answer.headers
        if auth == "required":
            assert answer.headers["cache-control"] == "no-store"
    if auth == "required":
        assert unauthenticated.status_code == 401


def test_the_real_server_sends_no_server_header(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPED_USERS_")}
    env |= {"GROUPED_USERS_DATABASE_URL": f"sqlite:///{tmp_path / 'gu.db'}"}
    env |= {"GROUPED_USERS_AUTH": "required"}
    port = free_port()
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        response = None
        while response is None and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            with suppress(httpx.TransportError):
                response = httpx.get(f"http://127.0.0.1:{port}/users/jsmith", timeout=2)
            time.sleep(0.1)
        assert response is not None, log.read_text()
        missing = httpx.get(f"http://127.0.0.1:{port}/nowhere", timeout=2)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
    assert response.status_code == 401
    for answer in (response, missing):
        assert "server" not in answer.headers
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
