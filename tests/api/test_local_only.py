"""Auth-disabled mode answers only loopback Hosts, and takes changes only from its own origin.

With authentication disabled every request acts as admin: a DNS-rebinding
page (its Host names the attacker's domain) or a page on another origin
(a no-cors fetch, a form post) must not be able to act through the
browser. The same attack in a real browser is in tests/ui/test_cross_origin.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.api import create_app
from app.auth import Actor, Role
from app.db import Database
from app.service import tokens
from app.settings import Settings
from tests.support.helpers import assert_problem

pytestmark = pytest.mark.anyio

USER = {"first_name": "Eve", "last_name": "Attacker", "groups": []}
FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8000",
    "127.0.0.1.nip.io",
    "localhost.evil.example",
    "localhost:8000@evil.example",
    "0.0.0.0:8000",
    "10.0.0.1",
    "[::2]:8000",
    "[::1",
    "localhost:http",
    "",
]
LOOPBACK_HOSTS = [
    "localhost",
    "localhost:8000",
    "LocalHost:1",
    "127.0.0.1",
    "127.0.0.1:8000",
    "127.1.2.3:9",
    "[::1]",
    "[::1]:8000",
]
# Origin, Host: a page elsewhere than the server the request went to.
FOREIGN_ORIGINS = [
    ("http://evil.example", "localhost:8000"),
    ("null", "localhost:8000"),
    ("http://localhost:9999", "localhost:8000"),
    ("http://127.0.0.1:8000", "localhost:8000"),
    ("https://localhost:8000", "localhost:8000"),
    ("http://localhost:8000.evil.example", "localhost:8000"),
    ("http://localhost", "localhost:8000"),
    ("http://[::1]:8001", "[::1]:8000"),
]


def app_client(settings: Settings, database: Database, host: str) -> httpx.AsyncClient:
    app = create_app(settings, database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}")


@pytest.fixture
async def local(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings, database, "localhost:8000") as client:
        yield client


async def test_a_foreign_host_is_misdirected(
    settings: Settings, database: Database, local: httpx.AsyncClient
) -> None:
    async with app_client(settings, database, "localhost:8000") as client:
        for host in FOREIGN_HOSTS:
            headers = {"Host": host}
            read = await client.get("/users", headers=headers)
            assert_problem(read, 421, "host_not_allowed")
            assert "X-Request-ID" in read.headers
            # A rebinding page asks for a token, to read its secret back.
            minted = await client.post(
                "/tokens", json={"name": "x", "role": "admin"}, headers=headers
            )
            assert_problem(minted, 421, "host_not_allowed")
            created = await client.post("/users/eve", json=USER, headers=headers)
            assert_problem(created, 421, "host_not_allowed")
            assert_problem(await client.get("/healthz", headers=headers), 421, "host_not_allowed")
    assert (await local.get("/users/eve")).status_code == 404
    assert (await local.get("/tokens")).json() == []


async def test_loopback_hosts_with_any_port_are_answered(
    settings: Settings, database: Database
) -> None:
    async with app_client(settings, database, "localhost") as client:
        for host in LOOPBACK_HOSTS:
            response = await client.get("/users", headers={"Host": host})
            assert response.status_code == 200, (host, response.text)


async def test_a_change_from_another_origin_is_refused(
    settings: Settings, database: Database, local: httpx.AsyncClient
) -> None:
    async with app_client(settings, database, "localhost:8000") as client:
        for origin, host in FOREIGN_ORIGINS:
            headers = {"Origin": origin, "Host": host}
            for method, url, body in [
                ("POST", "/users/eve", USER),
                ("PUT", "/users/eve", USER),
                ("PATCH", "/users/eve", {"first_name": "E"}),
                ("DELETE", "/users/eve", None),
                ("POST", "/groups/pwned", None),
                ("POST", "/tokens", {"name": "stolen", "role": "admin"}),
                ("POST", "/scim/v2/Users", {"userName": "eve"}),
            ]:
                response = await client.request(method, url, json=body, headers=headers)
                assert_problem(response, 403, "cross_origin_refused")
            # Reads stay open: without CORS the other page cannot read the answer.
            assert (await client.get("/users", headers=headers)).status_code == 200
    assert (await local.get("/users/eve")).status_code == 404
    assert (await local.get("/groups/pwned")).status_code == 404
    assert (await local.get("/tokens")).json() == []


async def test_a_cross_site_fetch_without_origin_is_refused(local: httpx.AsyncClient) -> None:
    response = await local.post(
        "/users/eve",
        content=b'{"first_name": "E", "last_name": "A"}',
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert_problem(response, 403, "cross_origin_refused")
    assert (await local.get("/users/eve")).status_code == 404


async def test_the_server_own_pages_and_programs_may_change(local: httpx.AsyncClient) -> None:
    # The console: same origin (the default port or an explicit one), same-origin fetch.
    same = {"Origin": "http://localhost:8000", "Sec-Fetch-Site": "same-origin"}
    assert (await local.post("/users/ada", json=USER, headers=same)).status_code == 201
    default_port = {"Origin": "http://LOCALHOST", "Host": "localhost:80"}
    assert (await local.post("/users/bob", json=USER, headers=default_port)).status_code == 201
    ipv6 = {"Origin": "http://[::1]:8000", "Host": "[::1]:8000"}
    assert (await local.delete("/users/bob", headers=ipv6)).status_code == 204
    # A program sends no Origin (curl, a SCIM client); a typed URL is "none".
    assert (await local.post("/users/cy", json=USER)).status_code == 201
    typed = {"Sec-Fetch-Site": "none"}
    assert (await local.post("/users/di", json=USER, headers=typed)).status_code == 201
    scim = await local.post(
        "/scim/v2/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ed",
            "name": {"givenName": "Ed", "familyName": "Scim"},
        },
    )
    assert scim.status_code == 201, scim.text


async def test_origins_listed_for_cors_may_change(settings: Settings, database: Database) -> None:
    listed = settings.model_copy(update={"cors_origins": ["http://localhost:5173"]})
    async with app_client(listed, database, "localhost:8000") as client:
        headers = {"Origin": "http://localhost:5173"}
        assert (await client.post("/users/ada", json=USER, headers=headers)).status_code == 201
        other = await client.post("/users/bob", json=USER, headers={"Origin": "http://evil"})
        assert_problem(other, 403, "cross_origin_refused")


async def test_with_auth_required_host_and_origin_are_not_checked(
    settings: Settings, database: Database
) -> None:
    required = settings.model_copy(update={"auth": "required"})
    async with database.writer() as session:
        _, secret = await tokens.create_token(
            session, actor=Actor("tests", Role.admin), name="tests-writer", role="writer"
        )
    async with app_client(required, database, "directory.example.com") as client:
        headers = {"Authorization": f"Bearer {secret}", "Origin": "https://app.example.com"}
        assert (await client.post("/users/ada", json=USER, headers=headers)).status_code == 201
        assert (await client.get("/users/ada", headers=headers)).status_code == 200
