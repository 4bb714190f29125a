"""GET /whoami: the caller's token name and role, for clients that adapt to the role."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.api import create_app
from app.auth import Actor, Role
from app.db import Database
from app.service import tokens
from app.settings import Settings
from tests.support.helpers import PROBLEM_JSON, assert_problem

pytestmark = pytest.mark.anyio


def client_of(settings: Settings, database: Database) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings, database=database))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


async def new_token(database: Database, name: str, role: str) -> str:
    async with database.writer() as session:
        _, secret = await tokens.create_token(
            session, actor=Actor("tests", Role.admin), name=name, role=role
        )
    return secret


@pytest.mark.parametrize("role", ["reader", "writer", "admin"])
async def test_a_token_learns_its_name_and_role(
    settings: Settings, database: Database, role: str
) -> None:
    secret = await new_token(database, f"ci-{role}", role)
    required = settings.model_copy(update={"auth": "required"})
    async with client_of(required, database) as client:
        response = await client.get("/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.text
    assert response.json() == {"name": f"ci-{role}", "role": role}
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("authorization", [None, "Bearer gu_nosuchtoken", "Basic YTpi"])
async def test_without_a_valid_token_it_is_401(
    settings: Settings, database: Database, authorization: str | None
) -> None:
    required = settings.model_copy(update={"auth": "required"})
    headers = {"Authorization": authorization} if authorization else {}
    async with client_of(required, database) as client:
        response = await client.get("/whoami", headers=headers)
    assert_problem(response, 401, "unauthenticated")


async def test_a_revoked_token_is_401(settings: Settings, database: Database) -> None:
    secret = await new_token(database, "gone", "admin")
    async with database.writer() as session:
        await tokens.revoke_token(session, actor=Actor("tests", Role.admin), name="gone")
    required = settings.model_copy(update={"auth": "required"})
    async with client_of(required, database) as client:
        response = await client.get("/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert_problem(response, 401, "unauthenticated")


async def test_with_auth_disabled_every_caller_is_the_anonymous_admin(
    settings: Settings, database: Database
) -> None:
    async with client_of(settings, database) as client:
        response = await client.get("/whoami")
    assert response.status_code == 200, response.text
    assert response.json() == {"name": "anonymous", "role": "admin"}


async def test_asking_changes_nothing(settings: Settings, database: Database) -> None:
    async with client_of(settings, database) as client:
        before = (await client.get("/audit")).json()["items"]
        assert (await client.get("/whoami")).status_code == 200
        assert (await client.get("/audit")).json()["items"] == before


def test_documented_with_an_example_and_its_problems() -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", auth="disabled"))
    schema: dict[str, Any] = app.openapi()
    operation = schema["paths"]["/whoami"]["get"]
    assert operation["summary"].strip()
    assert operation["description"].strip()
    assert set(operation["responses"]) == {"200", "401", "403", "500", "503"}
    success = operation["responses"]["200"]["content"]["application/json"]
    caller = schema["components"]["schemas"][success["schema"]["$ref"].rsplit("/", 1)[1]]
    assert caller["examples"] == [{"name": "ci", "role": "writer"}]
    assert caller["properties"]["role"]["enum"] == ["reader", "writer", "admin"]
    for status in ("401", "500", "503"):
        assert list(operation["responses"][status]["content"]) == [PROBLEM_JSON]
