"""The CLI's read-only commands neither wait for a writer nor make one wait."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from sqlalchemy import text

from app.db import Database
from app.settings import Settings

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def writer_holding_the_lock(settings: Settings, database: Database) -> AsyncIterator[None]:
    """Another process's write transaction, open for the whole block."""
    path = settings.sqlite_path()
    if path is not None:
        held = sqlite3.connect(path, isolation_level=None)
        held.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            held.rollback()
            held.close()
        return
    async with database.engine.connect() as connection:
        # Refuses every other writer of these tables, lets plain reads in.
        await connection.execute(text("LOCK TABLE tokens, audit IN EXCLUSIVE MODE"))
        yield
        await connection.rollback()


async def cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GROUPED_USERS_")}
    env["GROUPED_USERS_DATABASE_URL"] = settings.database_url
    # A writer would give up on the lock after this long, and fail.
    env["GROUPED_USERS_SQLITE_BUSY_TIMEOUT_MS"] = "300"
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "app", *args], env=env, check=False)
    return done.returncode, done.stderr.decode()


@pytest.mark.parametrize("command", [["token", "list"], ["audit"]])
async def test_read_only_commands_run_beside_a_writer(
    settings: Settings, database: Database, command: list[str]
) -> None:
    async with writer_holding_the_lock(settings, database):
        returncode, stderr = await cli(settings, *command)
    assert returncode == 0, stderr
