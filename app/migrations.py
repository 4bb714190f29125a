"""Applying and inspecting Alembic migrations from the app's own engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# alembic.ini and alembic/ stand beside the app package.
ROOT = Path(__file__).resolve().parent.parent


def alembic_config() -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to head, in one transaction where the database allows."""
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A migration may rebuild a SQLite table (Alembic's batch mode:
            # copy, drop the old, rename); with foreign keys enforced, the
            # drop would cascade and delete the rows that refer to it. The
            # pragma only takes effect outside a transaction, hence here.
            await _sqlite_foreign_keys(connection, enforced=False)
        try:
            async with connection.begin():
                await connection.run_sync(run)
        finally:
            if sqlite:
                await _sqlite_foreign_keys(connection, enforced=True)


async def _sqlite_foreign_keys(connection: AsyncConnection, *, enforced: bool) -> None:
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None, "a checked-out connection has its driver connection"
    await driver.execute(f"PRAGMA foreign_keys = {'ON' if enforced else 'OFF'}")


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)
