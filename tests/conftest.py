"""Fixtures: every API test runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.api import create_app
from app.auth import Actor, Role
from app.db import Database, create_database
from app.migrations import upgrade
from app.service import tokens
from app.settings import Settings


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


async def _migrate(url: str) -> None:
    database = create_database(Settings(database_url=url))
    try:
        await upgrade(database.engine)
    finally:
        await database.dispose()


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private, migrated database on the TEST_POSTGRES_URL server for this run."""
    base = os.environ.get("TEST_POSTGRES_URL")
    if not base:
        message = "TEST_POSTGRES_URL is not set; `make test` sets it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    base = Settings(database_url=base).database_url
    name = f"grouped_users_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
                text("TRUNCATE memberships, users, groups, tokens, audit RESTART IDENTITY CASCADE")
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
        transport=transport, base_url="http://test", headers=headers
    ) as client:
        yield client
