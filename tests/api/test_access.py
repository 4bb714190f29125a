"""Who may call what: every route and method x every kind of caller.

The routes come from the app's own route table; RULES says which role each
one needs. A route without a rule fails the matrix, so a new endpoint cannot
ship without deciding who may call it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select, update

from app.api import create_app
from app.auth import Actor, Role, digest
from app.db import Database
from app.models import AuditEntry, Token
from app.service import tokens
from app.settings import Settings
from tests.support.helpers import PROBLEM_JSON, assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio

Route = tuple[str, str]

# (method, path) -> the least role that may call it; None: open to all.
RULES: dict[Route, Role | None] = {
    ("GET", "/users"): Role.reader,
    ("GET", "/users/{userid}"): Role.reader,
    ("POST", "/users/{userid}"): Role.writer,
    ("PUT", "/users/{userid}"): Role.writer,
    ("PATCH", "/users/{userid}"): Role.writer,
    ("DELETE", "/users/{userid}"): Role.writer,
    ("GET", "/groups"): Role.reader,
    ("GET", "/groups/{name}"): Role.reader,
    ("POST", "/groups/{name}"): Role.writer,
    ("PUT", "/groups/{name}"): Role.writer,
    ("DELETE", "/groups/{name}"): Role.writer,
    ("PUT", "/groups/{name}/members/{userid}"): Role.writer,
    ("DELETE", "/groups/{name}/members/{userid}"): Role.writer,
    ("GET", "/tokens"): Role.admin,
    ("POST", "/tokens"): Role.admin,
    ("DELETE", "/tokens/{name}"): Role.admin,
    ("GET", "/audit"): Role.admin,
    ("GET", "/events"): Role.reader,
    ("GET", "/events/cursor"): Role.reader,
    ("GET", "/webhooks"): Role.admin,
    ("POST", "/webhooks"): Role.admin,
    ("GET", "/webhooks/{webhook_id}"): Role.admin,
    ("PATCH", "/webhooks/{webhook_id}"): Role.admin,
    ("DELETE", "/webhooks/{webhook_id}"): Role.admin,
    ("POST", "/webhooks/{webhook_id}/rotate-secret"): Role.admin,
    ("GET", "/webhooks/{webhook_id}/deliveries"): Role.admin,
    ("POST", "/webhooks/{webhook_id}/deliveries/{event_id}/retry"): Role.admin,
    ("GET", "/openapi.json"): Role.reader,
    ("GET", "/metrics"): Role.reader,
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/whoami"): Role.reader,
    # The console's static files hold no data: the API behind them checks every call.
    ("GET", "/ui"): None,
    ("GET", "/ui/{asset}"): None,
    # So are the front page and the docs' page and files: the document they show
    # comes from /openapi.json, which needs a reader's token.
    ("GET", "/"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/{name}"): None,
}


@dataclass(frozen=True)
class Call:
    """A request to a route that succeeds, with this status, for a caller allowed in."""

    url: str
    status: int
    body: Any = None
    content_type: str = "application/json"


# On the world below: alice in staff, bob in no group, and a spare token.
CALLS: dict[Route, Call] = {
    ("GET", "/users"): Call("/users", 200),
    ("GET", "/users/{userid}"): Call("/users/alice", 200),
    ("POST", "/users/{userid}"): Call("/users/newbie", 201, {"first_name": "N", "last_name": "B"}),
    ("PUT", "/users/{userid}"): Call(
        "/users/alice", 200, {"first_name": "Alice", "last_name": "B", "groups": ["staff"]}
    ),
    ("PATCH", "/users/{userid}"): Call(
        "/users/alice", 200, {"first_name": "Al"}, "application/merge-patch+json"
    ),
    ("DELETE", "/users/{userid}"): Call("/users/alice", 204),
    ("GET", "/groups"): Call("/groups", 200),
    ("GET", "/groups/{name}"): Call("/groups/staff", 200),
    ("POST", "/groups/{name}"): Call("/groups/newgroup", 201),
    ("PUT", "/groups/{name}"): Call("/groups/staff", 200, ["alice", "bob"]),
    ("DELETE", "/groups/{name}"): Call("/groups/staff", 204),
    ("PUT", "/groups/{name}/members/{userid}"): Call("/groups/staff/members/bob", 204),
    ("DELETE", "/groups/{name}/members/{userid}"): Call("/groups/staff/members/alice", 204),
    ("GET", "/tokens"): Call("/tokens", 200),
    ("POST", "/tokens"): Call("/tokens", 201, {"name": "fresh", "role": "reader"}),
    ("DELETE", "/tokens/{name}"): Call("/tokens/spare", 204),
    ("GET", "/audit"): Call("/audit", 200),
    ("GET", "/events"): Call("/events", 200),
    ("GET", "/events/cursor"): Call("/events/cursor", 200),
    ("GET", "/webhooks"): Call("/webhooks", 200),
    ("POST", "/webhooks"): Call("/webhooks", 201, {"url": "http://127.0.0.1:9/hook"}),
    # The world holds no webhook: an allowed caller passes the guard and is
    # told so (404), a refused one never reaches the lookup (401/403).
    ("GET", "/webhooks/{webhook_id}"): Call("/webhooks/wh_none", 404),
    ("PATCH", "/webhooks/{webhook_id}"): Call("/webhooks/wh_none", 404, {"enabled": False}),
    ("DELETE", "/webhooks/{webhook_id}"): Call("/webhooks/wh_none", 404),
    ("POST", "/webhooks/{webhook_id}/rotate-secret"): Call("/webhooks/wh_none/rotate-secret", 404),
    ("GET", "/webhooks/{webhook_id}/deliveries"): Call("/webhooks/wh_none/deliveries", 404),
    ("POST", "/webhooks/{webhook_id}/deliveries/{event_id}/retry"): Call(
        "/webhooks/wh_none/deliveries/evt_none/retry", 404
    ),
    ("GET", "/openapi.json"): Call("/openapi.json", 200),
    ("GET", "/docs"): Call("/docs", 200),
    ("GET", "/metrics"): Call("/metrics", 200),
    ("GET", "/healthz"): Call("/healthz", 200),
    ("GET", "/readyz"): Call("/readyz", 200),
    ("GET", "/whoami"): Call("/whoami", 200),
    ("GET", "/ui"): Call("/ui", 200),
    ("GET", "/ui/{asset}"): Call("/ui/app.js", 200),
    ("GET", "/"): Call("/", 200),
    ("GET", "/docs/{name}"): Call("/docs/docs.js", 200),
}

# SCIM 2.0. Its refusals are SCIM errors, not problems: the matrix of
# tests/scim/test_access.py checks them; the checks of allowed callers run here.
_SEARCH = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
_PATCH = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}
_USER = {"userName": "alice", "name": {"givenName": "Alice", "familyName": "B"}}
SCIM_RULES: dict[Route, Role | None] = {
    ("GET", "/scim/v2/ServiceProviderConfig"): Role.reader,
    ("GET", "/scim/v2/ResourceTypes"): Role.reader,
    ("GET", "/scim/v2/ResourceTypes/{name}"): Role.reader,
    ("GET", "/scim/v2/Schemas"): Role.reader,
    ("GET", "/scim/v2/Schemas/{urn}"): Role.reader,
    ("POST", "/scim/v2/.search"): Role.reader,
    ("GET", "/scim/v2/Users"): Role.reader,
    ("POST", "/scim/v2/Users/.search"): Role.reader,
    ("GET", "/scim/v2/Users/{userid}"): Role.reader,
    ("POST", "/scim/v2/Users"): Role.writer,
    ("PUT", "/scim/v2/Users/{userid}"): Role.writer,
    ("PATCH", "/scim/v2/Users/{userid}"): Role.writer,
    ("DELETE", "/scim/v2/Users/{userid}"): Role.writer,
    ("GET", "/scim/v2/Groups"): Role.reader,
    ("POST", "/scim/v2/Groups/.search"): Role.reader,
    ("GET", "/scim/v2/Groups/{name}"): Role.reader,
    ("POST", "/scim/v2/Groups"): Role.writer,
    ("PUT", "/scim/v2/Groups/{name}"): Role.writer,
    ("PATCH", "/scim/v2/Groups/{name}"): Role.writer,
    ("DELETE", "/scim/v2/Groups/{name}"): Role.writer,
}
SCIM_CALLS: dict[Route, Call] = {
    ("GET", "/scim/v2/ServiceProviderConfig"): Call("/scim/v2/ServiceProviderConfig", 200),
    ("GET", "/scim/v2/ResourceTypes"): Call("/scim/v2/ResourceTypes", 200),
    ("GET", "/scim/v2/ResourceTypes/{name}"): Call("/scim/v2/ResourceTypes/User", 200),
    ("GET", "/scim/v2/Schemas"): Call("/scim/v2/Schemas", 200),
    ("GET", "/scim/v2/Schemas/{urn}"): Call(
        "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", 200
    ),
    ("POST", "/scim/v2/.search"): Call("/scim/v2/.search", 200, _SEARCH),
    ("GET", "/scim/v2/Users"): Call("/scim/v2/Users", 200),
    ("POST", "/scim/v2/Users/.search"): Call("/scim/v2/Users/.search", 200, _SEARCH),
    ("GET", "/scim/v2/Users/{userid}"): Call("/scim/v2/Users/alice", 200),
    ("POST", "/scim/v2/Users"): Call("/scim/v2/Users", 201, {**_USER, "userName": "newbie"}),
    ("PUT", "/scim/v2/Users/{userid}"): Call("/scim/v2/Users/alice", 200, _USER),
    ("PATCH", "/scim/v2/Users/{userid}"): Call("/scim/v2/Users/alice", 200, _PATCH),
    ("DELETE", "/scim/v2/Users/{userid}"): Call("/scim/v2/Users/alice", 204),
    ("GET", "/scim/v2/Groups"): Call("/scim/v2/Groups", 200),
    ("POST", "/scim/v2/Groups/.search"): Call("/scim/v2/Groups/.search", 200, _SEARCH),
    ("GET", "/scim/v2/Groups/{name}"): Call("/scim/v2/Groups/staff", 200),
    ("POST", "/scim/v2/Groups"): Call("/scim/v2/Groups", 201, {"displayName": "New Group"}),
    ("PUT", "/scim/v2/Groups/{name}"): Call("/scim/v2/Groups/staff", 200, {"displayName": "Staff"}),
    ("PATCH", "/scim/v2/Groups/{name}"): Call(
        "/scim/v2/Groups/staff",
        200,
        {**_PATCH, "Operations": [{"op": "add", "path": "members", "value": [{"value": "bob"}]}]},
    ),
    ("DELETE", "/scim/v2/Groups/{name}"): Call("/scim/v2/Groups/staff", 204),
}
RULES |= SCIM_RULES
CALLS |= SCIM_CALLS

# Callers who are not authenticated, whatever they send.
UNAUTHENTICATED = ["none", "basic", "bearer-only", "bad", "revoked", "expired"]
KINDS = [*UNAUTHENTICATED, "reader", "writer", "admin"]


def app_routes() -> list[Route]:
    """Every (method, path) the app answers, from its route table."""
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", auth="required"))
    return sorted(
        (method, context.path)
        for context in iter_route_contexts(app.routes)
        if context.path is not None
        for method in context.methods or ()
    )


ROUTES = app_routes()
ROUTE_IDS = [f"{method} {path}" for method, path in ROUTES]
# Routes whose refusals are problem+json (SCIM's are SCIM errors: tests/scim/test_access.py).
PROBLEM_ROUTES = [route for route in ROUTES if route not in SCIM_RULES]
PROBLEM_ROUTE_IDS = [f"{method} {path}" for method, path in PROBLEM_ROUTES]


def client_of(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


async def send(
    client: httpx.AsyncClient, method: str, call: Call, headers: dict[str, str]
) -> httpx.Response:
    content = None if call.body is None else json.dumps(call.body).encode()
    if content is not None:
        headers = {**headers, "Content-Type": call.content_type}
    return await client.request(method, call.url, content=content, headers=headers)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def new_token(
    database: Database, name: str, role: str, expires_in: timedelta | None = None
) -> str:
    async with database.writer() as session:
        _, secret = await tokens.create_token(
            session, actor=Actor("tests", Role.admin), name=name, role=role, expires_in=expires_in
        )
    return secret


async def audit_rows(database: Database) -> int:
    async with database.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(AuditEntry)) or 0)


@dataclass(frozen=True)
class World:
    client: httpx.AsyncClient
    open_client: httpx.AsyncClient
    database: Database
    headers: dict[str, dict[str, str]]


@pytest.fixture
async def world(settings: Settings, database: Database) -> AsyncIterator[World]:
    """Users alice (in staff) and bob; tokens of every kind; apps with auth required and not."""
    # A webhook to a loopback address may be registered here (nothing is delivered).
    settings = settings.model_copy(
        update={"webhook_allow_http": True, "webhook_allow_private": True}
    )
    required = settings.model_copy(update={"auth": "required"})
    async with (
        client_of(create_app(settings, database=database)) as open_client,
        client_of(create_app(required, database=database)) as client,
    ):
        await create_group(open_client, "staff")
        await create_user(open_client, "alice", groups=["staff"])
        await create_user(open_client, "bob")
        found = {role: await new_token(database, role, role) for role in ("reader", "writer")}
        admin = await new_token(database, "admin", "admin")
        revoked = await new_token(database, "revoked", "admin")
        expired = await new_token(database, "expired", "admin", timedelta(hours=1))
        await new_token(database, "spare", "reader")
        async with database.writer() as session:
            await tokens.revoke_token(session, actor=Actor("tests", Role.admin), name="revoked")
        async with database.engine.begin() as connection:
            past = datetime.now(UTC) - timedelta(days=1)
            await connection.execute(
                update(Token).where(Token.name == "expired").values(expires_at=past)
            )
        # The admin secret with its last character changed: no such token.
        bad = admin[:-1] + ("A" if admin[-1] != "A" else "B")
        headers = {
            "none": {},
            "basic": {"Authorization": "Basic YWRtaW46YWRtaW4="},
            "bearer-only": {"Authorization": "Bearer"},
            "bad": bearer(bad),
            "revoked": bearer(revoked),
            "expired": bearer(expired),
            "reader": bearer(found["reader"]),
            "writer": bearer(found["writer"]),
            "admin": bearer(admin),
        }
        yield World(client, open_client, database, headers)


def test_every_route_has_a_rule() -> None:
    routes = set(ROUTES)
    assert not routes - RULES.keys(), f"routes without an access rule: {routes - RULES.keys()}"
    assert not RULES.keys() - routes, f"rules for routes that do not exist: {RULES.keys() - routes}"
    assert RULES.keys() == CALLS.keys()


def check_headers(response: httpx.Response, cache_control: str = "no-store") -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == cache_control
    assert "server" not in response.headers


def allowed(route: Route, kind: str) -> bool:
    rule = RULES[route]
    return rule is None or (kind not in UNAUTHENTICATED and Role[kind] >= rule)


@pytest.mark.parametrize("route", PROBLEM_ROUTES, ids=PROBLEM_ROUTE_IDS)
async def test_refused_callers(world: World, route: Route) -> None:
    """Every caller below the route's role: 401 unauthenticated or 403 forbidden, no change."""
    if route not in RULES or route not in CALLS:
        pytest.fail(f"{route[0]} {route[1]} has no access rule in RULES (and CALLS)")
    before = await audit_rows(world.database)
    failures: list[str] = []
    for kind in (kind for kind in KINDS if not allowed(route, kind)):
        response = await send(world.client, route[0], CALLS[route], world.headers[kind])
        try:
            check_headers(response)
            if kind in UNAUTHENTICATED:
                assert_problem(response, 401, "unauthenticated")
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            else:
                body = assert_problem(response, 403, "forbidden")
                rule = RULES[route]
                assert rule is not None
                assert rule.name in body["detail"]
                assert "WWW-Authenticate" not in response.headers
        except AssertionError as exc:
            failures.append(f"{kind}: {exc}")
    assert not failures, "\n".join(failures)
    # A refused request changes nothing.
    assert await audit_rows(world.database) == before


ALLOWED = [
    (route, kind) for route in ROUTES if route in RULES for kind in KINDS if allowed(route, kind)
]


@pytest.mark.parametrize(
    ("route", "kind"), ALLOWED, ids=[f"{m} {p}-{kind}" for (m, p), kind in ALLOWED]
)
async def test_allowed_callers(world: World, route: Route, kind: str) -> None:
    call = CALLS[route]
    response = await send(world.client, route[0], call, world.headers[kind])
    assert response.status_code == call.status, response.text
    # The docs' files hold no data: asked for without credentials, they may be cached.
    public = route == ("GET", "/docs/{name}") and "Authorization" not in world.headers[kind]
    check_headers(response, "public, no-cache" if public else "no-store")


async def test_401_never_says_whether_a_token_exists(world: World) -> None:
    """No, malformed, unknown, revoked and expired tokens get the very same answer."""
    answers: set[tuple[str, str, str]] = set()
    for route in (route for route in PROBLEM_ROUTES if RULES.get(route) is not None):
        for kind in UNAUTHENTICATED:
            response = await send(world.client, route[0], CALLS[route], world.headers[kind])
            assert response.status_code == 401, (route, kind, response.text)
            headers = response.headers
            answers.add((response.text, headers["WWW-Authenticate"], headers["Content-Type"]))
    assert len(answers) == 1, answers


@pytest.mark.parametrize("kind", ["none", "reader"])
async def test_a_refused_caller_is_refused_before_the_body_is_read(world: World, kind: str) -> None:
    response = await world.client.post(
        "/users/mallory",
        content=b"{not json" * 10,
        headers={**world.headers[kind], "Content-Type": "text/plain"},
    )
    assert response.status_code == (401 if kind == "none" else 403), response.text


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_auth_disabled_every_route_answers_as_admin(world: World, route: Route) -> None:
    response = await send(world.open_client, route[0], CALLS[route], {})
    assert response.status_code == CALLS[route].status, response.text
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "server" not in response.headers


@pytest.mark.parametrize(("method", "url"), [("GET", "/nowhere"), ("PATCH", "/groups")])
@pytest.mark.parametrize("auth", ["required", "disabled"])
async def test_security_headers_on_routing_errors(
    world: World, method: str, url: str, auth: str
) -> None:
    client = world.client if auth == "required" else world.open_client
    response = await client.request(method, url)
    assert response.status_code >= 400
    assert response.headers["Content-Type"] == PROBLEM_JSON
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "server" not in response.headers
    if auth == "required":
        assert response.headers["Cache-Control"] == "no-store"


ORIGIN = "https://admin.example"


async def test_cors_is_off_by_default(world: World) -> None:
    response = await world.client.get(
        "/users", headers={**world.headers["admin"], "Origin": ORIGIN}
    )
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await world.client.options(
        "/users", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_cors_allows_only_listed_origins(settings: Settings, world: World) -> None:
    configured = settings.model_copy(update={"auth": "required", "cors_origins": [ORIGIN]})
    async with client_of(create_app(configured, database=world.database)) as client:
        allowed = await client.get("/users", headers={**world.headers["admin"], "Origin": ORIGIN})
        assert allowed.status_code == 200
        assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
        other = await client.get(
            "/users", headers={**world.headers["admin"], "Origin": "https://evil.example"}
        )
        assert other.status_code == 200
        assert "Access-Control-Allow-Origin" not in other.headers
        preflight = await client.options(
            "/users/alice",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()


async def create_via_api(world: World, body: dict[str, Any]) -> dict[str, Any]:
    response = await world.client.post("/tokens", json=body, headers=world.headers["admin"])
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_post_tokens_shows_the_secret_once(world: World) -> None:
    created = await create_via_api(world, {"name": "ci", "role": "reader", "expires_in": "1h"})
    shown = {"id", "name", "role", "created_at", "last_used_at", "expires_at"}
    assert set(created) == {*shown, "token"}
    assert (created["name"], created["role"], created["last_used_at"]) == ("ci", "reader", None)
    lifetime = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(
        created["created_at"]
    )
    assert lifetime == timedelta(hours=1)
    secret = created["token"]
    assert (await world.client.get("/users", headers=bearer(secret))).status_code == 200
    refused = await world.client.post("/groups/ops", headers=bearer(secret))
    assert_problem(refused, 403, "forbidden")

    listed = await world.client.get("/tokens", headers=world.headers["admin"])
    assert listed.status_code == 200
    assert {entry["name"] for entry in listed.json()} == {
        "reader", "writer", "admin", "expired", "spare", "ci"
    }  # fmt: skip
    for entry in listed.json():
        assert set(entry) == shown
    assert secret not in listed.text
    assert digest(secret) not in listed.text
    for kind in ("reader", "writer", "admin"):
        assert world.headers[kind]["Authorization"].removeprefix("Bearer ") not in listed.text


async def test_delete_token_stops_it_at_once(settings: Settings, world: World) -> None:
    secret = (await create_via_api(world, {"name": "ci", "role": "writer"}))["token"]
    # Another server process on the same database: nothing is cached.
    # A webhook to a loopback address may be registered here (nothing is delivered).
    settings = settings.model_copy(
        update={"webhook_allow_http": True, "webhook_allow_private": True}
    )
    required = settings.model_copy(update={"auth": "required"})
    async with client_of(create_app(required, database=world.database)) as other:
        assert (await other.get("/users", headers=bearer(secret))).status_code == 200
        response = await world.client.delete("/tokens/ci", headers=world.headers["admin"])
        assert response.status_code == 204
        assert response.content == b""
        for client in (world.client, other):
            refused = await client.get("/users", headers=bearer(secret))
            assert_problem(refused, 401, "unauthenticated")
    listed = await world.client.get("/tokens", headers=world.headers["admin"])
    assert "ci" not in {entry["name"] for entry in listed.json()}
    again = await world.client.delete("/tokens/ci", headers=world.headers["admin"])
    assert_problem(again, 404, "token_not_found")


async def test_duplicate_token_name_is_409(world: World) -> None:
    await create_via_api(world, {"name": "ci", "role": "reader"})
    response = await world.client.post(
        "/tokens", json={"name": "ci", "role": "admin"}, headers=world.headers["admin"]
    )
    assert_problem(response, 409, "token_exists")
    listed = await world.client.get("/tokens", headers=world.headers["admin"])
    assert [e["role"] for e in listed.json() if e["name"] == "ci"] == ["reader"]


@pytest.mark.parametrize("name", ["nobody", "Not-A-Name", "a%20b"])
async def test_delete_unknown_token_is_404(world: World, name: str) -> None:
    response = await world.client.delete(f"/tokens/{name}", headers=world.headers["admin"])
    assert_problem(response, 404, "token_not_found")


BAD_FIELDS: list[tuple[str, Any]] = [
    *(("role", role) for role in ["root", "Admin", 3, None]),
    *(("expires_in", value) for value in ["soon", "1x", "0s", "-1h", "1.5h", "", 3600]),
    # Past year 9999, or not ASCII digits: each was a 500.
    *(("expires_in", value) for value in ["99999999d", "²d", "36501d", "9" * 5000 + "d"]),
    ("name", "Bad Name"),
    # The audit log's names for actors that are not tokens.
    ("name", "anonymous"),
    ("name", "cli:root"),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
async def test_bad_token_request_is_422(world: World, field: str, value: Any) -> None:
    body = {"name": "ci", "role": "reader", field: value}
    response = await world.client.post("/tokens", json=body, headers=world.headers["admin"])
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == 422
    assert field in [error["field"] for error in problem["errors"]], problem
    listed = await world.client.get("/tokens", headers=world.headers["admin"])
    assert "ci" not in {entry["name"] for entry in listed.json()}
