"""SQLite connections: pragmas, the default file, and who takes the write lock."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database, create_database
from app.settings import DEFAULT_DATABASE_URL, Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = create_database(Settings(database_url=f"sqlite:///{tmp_path}/pragmas.db"))
    try:
        yield database
    finally:
        await database.dispose()


async def _pragmas(source: AsyncSession) -> dict[str, object]:
    names = ("foreign_keys", "journal_mode", "busy_timeout", "synchronous")
    return {name: (await source.execute(text(f"PRAGMA {name}"))).scalar() for name in names}


def _check(pragmas: dict[str, object]) -> None:
    assert pragmas["foreign_keys"] == 1
    assert str(pragmas["journal_mode"]).lower() == "wal"
    busy_timeout = pragmas["busy_timeout"]
    assert isinstance(busy_timeout, int)
    assert busy_timeout > 0
    assert pragmas["synchronous"] == 2  # FULL


async def test_every_connection_has_the_pragmas(sqlite_db: Database) -> None:
    # Several connections open at once, through both session factories: the pool's
    # first connection is not the only one set up.
    async with AsyncExitStack() as stack:
        factories = [sqlite_db.reader, sqlite_db.reader, sqlite_db.reader, sqlite_db.writer]
        sessions = [await stack.enter_async_context(factory()) for factory in factories]
        for session in sessions:
            await stack.enter_async_context(session.begin())
            _check(await _pragmas(session))


def test_plain_sqlite_urls_get_the_async_driver() -> None:
    settings = Settings(database_url="sqlite:///./somewhere/x.db")
    assert settings.database_url == "sqlite+aiosqlite:///./somewhere/x.db"
    assert settings.sqlite_path() == Path("somewhere/x.db")


async def test_default_database_is_a_file_under_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GROUPED_USERS_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.database_url == "sqlite+aiosqlite:///./data/grouped-users.db"
    assert settings.sqlite_path() == Path("data/grouped-users.db")

    database = create_database(settings)
    try:
        assert (tmp_path / "data").is_dir()
        async with database.writer() as session, session.begin():
            await session.execute(text("CREATE TABLE probe (x INTEGER)"))
    finally:
        await database.dispose()
    assert (tmp_path / "data" / "grouped-users.db").is_file()


@pytest.fixture
async def no_wait(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Database]:
    """A migrated SQLite file whose connections fail at once instead of waiting for a lock."""
    path = tmp_path / "locks.db"
    shutil.copy(sqlite_template, path)
    settings = Settings(database_url=f"sqlite:///{path}", sqlite_busy_timeout_ms=0)
    database = create_database(settings)
    try:
        yield database
    finally:
        await database.dispose()


INSERT = text(
    "INSERT INTO users (userid, first_name, last_name, search_names, version)"
    " VALUES (:u, 'A', 'B', '', 1)"
)
COUNT = text("SELECT count(*) FROM users")


async def test_readers_take_no_write_lock(no_wait: Database) -> None:
    async with (
        no_wait.reader() as first,
        no_wait.reader() as second,
        no_wait.writer() as writer,
    ):
        await first.begin()
        await second.begin()
        assert await first.scalar(COUNT) == 0
        assert await second.scalar(COUNT) == 0
        # With two read transactions open, a writer still begins and commits at once.
        async with writer.begin():
            await writer.execute(INSERT, {"u": "written"})
        # The readers keep the snapshot they started with.
        assert await first.scalar(COUNT) == 0
        assert await second.scalar(COUNT) == 0
        await first.commit()
        await second.commit()
    async with no_wait.reader() as reader, reader.begin():
        assert await reader.scalar(COUNT) == 1


async def test_writers_take_the_write_lock_up_front(no_wait: Database) -> None:
    async with no_wait.writer() as holder, no_wait.writer() as other:
        await holder.begin()
        # Even before it has written anything, the first writer holds the lock...
        assert await holder.scalar(COUNT) == 0
        # ...so a second writer cannot begin.
        with pytest.raises(OperationalError, match="locked"):
            async with other.begin():
                await other.execute(INSERT, {"u": "second"})
        await holder.execute(INSERT, {"u": "first"})
        await holder.commit()
    async with no_wait.reader() as reader, reader.begin():
        assert await reader.scalar(COUNT) == 1
