"""Fixtures: every API test runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.api import create_app
from app.auth import Actor, Role
from app.db import Database, create_database
from app.migrations import upgrade
from app.service import tokens
from app.settings import Settings
from tests.support.live_server import fresh_postgres, postgres_server


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


async def _migrate(url: str) -> None:
    database = create_database(Settings(database_url=url))
    try:
        await upgrade(database.engine)
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private, migrated database on the TEST_POSTGRES_URL server for this run."""
    with fresh_postgres(postgres_server(), "grouped_users_test") as url:
        asyncio.run(_migrate(url))
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies."""
    path = tmp_path_factory.mktemp("template") / "grouped-users.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        path = tmp_path / "grouped-users.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return Settings(database_url=f"sqlite+aiosqlite:///{path}", auth="disabled")
    return Settings(database_url=request.getfixturevalue("postgres_url"), auth="disabled")


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = create_database(settings)
    if database.dialect == "postgresql":
        async with database.engine.begin() as connection:
            await connection.execute(
                text(
                    "TRUNCATE memberships, users, groups, tokens, audit, events, webhooks"
                    " RESTART IDENTITY CASCADE"
                )
            )
            await connection.execute(
                text("UPDATE event_counter SET position = 0, purged_through = 0")
            )
    try:
        yield database
    finally:
        await database.dispose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Modules marked `with_writer_token` run each test twice: with auth
    # disabled, and with auth required and a writer token.
    if "auth_mode" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "with_writer_token"
    ):
        metafunc.parametrize("auth_mode", ["anonymous", "writer"], indirect=True)


@pytest.fixture
def auth_mode(request: pytest.FixtureRequest) -> str:
    """How the `client` fixture authenticates: "anonymous" (auth disabled) or "writer"."""
    return str(getattr(request, "param", "anonymous"))


@pytest.fixture
async def client(
    settings: Settings, database: Database, auth_mode: str
) -> AsyncIterator[httpx.AsyncClient]:
    headers: dict[str, str] = {}
    if auth_mode == "writer":
        settings = settings.model_copy(update={"auth": "required"})
        async with database.writer() as session:
            _, secret = await tokens.create_token(
                session, actor=Actor("tests", Role.admin), name="tests-writer", role="writer"
            )
        headers["Authorization"] = f"Bearer {secret}"
    app = create_app(settings, database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=headers
    ) as client:
        yield client
