"""The Alembic migrations build exactly the schema of app.models, on both databases."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import Database, create_database
from app.migrations import alembic_config, current_revision, head_revision, upgrade
from app.models import Base
from app.settings import Settings
from tests.support.live_server import fresh_postgres_async, postgres_server

pytestmark = pytest.mark.anyio

TABLES = {"users", "groups", "memberships"}


# The substring index of user searches (alembic 0005, 0007) is no model: an FTS5
# table with its shadow tables on SQLite, pg_trgm indexes on PostgreSQL.
SEARCH_INDEX = ("users_search", "ix_users_userid_lower_trgm", "ix_users_search_names_trgm")


def _not_the_search_index(
    _object: Any, name: str | None, _type: str, _reflected: bool, _compare_to: Any
) -> bool:
    return name is None or not name.startswith(SEARCH_INDEX)


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"include_object": _not_the_search_index})
    return list(compare_metadata(context, Base.metadata))


async def _schema_differences(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(_differences)


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: inspect(c).get_table_names())
    return set(names)


async def _downgrade_to_base(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade_to("base"))


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database of its own, with no tables yet; the shared test databases stay untouched."""
    if request.param == "sqlite":
        database = create_database(Settings(database_url=f"sqlite:///{tmp_path}/fresh.db"))
        try:
            yield database
        finally:
            await database.dispose()
        return
    async with _empty_postgres() as database:
        yield database


@asynccontextmanager
async def _empty_postgres() -> AsyncIterator[Database]:
    """A PostgreSQL database of its own, with no tables yet."""
    async with fresh_postgres_async(postgres_server(), "grouped_users_migrations") as url:
        database = create_database(Settings(database_url=url))
        try:
            yield database
        finally:
            await database.dispose()


async def test_migrated_schema_matches_the_models(database: Database) -> None:
    assert await current_revision(database.engine) == head_revision()
    assert await _schema_differences(database.engine) == []


def _membership_keys(connection: Connection) -> tuple[Any, list[Any], list[Any], list[Any]]:
    inspector = inspect(connection)
    return (
        inspector.get_pk_constraint("memberships"),
        inspector.get_unique_constraints("memberships"),
        inspector.get_indexes("memberships"),
        inspector.get_foreign_keys("memberships"),
    )


async def test_memberships_cascade_and_are_unique_per_pair(database: Database) -> None:
    async with database.engine.connect() as connection:
        primary, uniques, indexes, foreign = await connection.run_sync(_membership_keys)

    pair = {"group_id", "user_id"}
    unique_sets = [set(primary["constrained_columns"])]
    unique_sets += [set(u["column_names"]) for u in uniques]
    unique_sets += [set(i["column_names"]) for i in indexes if i["unique"]]
    assert pair in unique_sets

    references = {
        (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"])): fk
        for fk in foreign
    }
    assert set(references) == {
        (("group_id",), "groups", ("id",)),
        (("user_id",), "users", ("id",)),
    }
    for fk in references.values():
        assert fk["options"].get("ondelete", "").upper() == "CASCADE", fk


async def test_the_database_enforces_the_cascades(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO users (id, userid, first_name, last_name, search_names, version)"
                " VALUES (1, 'a', 'A', 'A', '', 1), (2, 'b', 'B', 'B', '', 1)"
            )
        )
        await connection.execute(
            text("INSERT INTO groups (id, name, version) VALUES (1, 'g', 1), (2, 'h', 1)")
        )
        await connection.execute(
            text("INSERT INTO memberships (group_id, user_id) VALUES (1, 1), (1, 2), (2, 2)")
        )
        await connection.execute(text("DELETE FROM users WHERE id = 1"))
        await connection.execute(text("DELETE FROM groups WHERE id = 2"))
        rows = await connection.execute(text("SELECT group_id, user_id FROM memberships"))
        assert rows.all() == [(1, 2)]


async def test_downgrade_to_base_and_upgrade_again(empty_database: Database) -> None:
    engine = empty_database.engine
    assert await current_revision(engine) is None

    await upgrade(engine)
    assert await _tables(engine) >= TABLES
    assert await current_revision(engine) == head_revision()

    await _downgrade_to_base(engine)
    assert await _tables(engine) <= {"alembic_version"}
    assert await current_revision(engine) is None

    await upgrade(engine)
    assert await current_revision(engine) == head_revision()
    assert await _schema_differences(engine) == []
    # Upgrading a database at head changes nothing.
    await upgrade(engine)
    assert await current_revision(engine) == head_revision()


async def test_upgrading_keeps_every_row(empty_database: Database) -> None:
    """Each migration after the first, applied to a database holding data, loses none of it.

    On SQLite a migration that recreates a table (Alembic's batch mode) would
    drop the old one, and with foreign keys on, its memberships with it.
    """
    engine = empty_database.engine

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_to("0002"))
        await connection.execute(
            text(
                "INSERT INTO users (id, userid, first_name, last_name, search_names, version)"
                " VALUES (1, 'ann', 'Ann', 'Lee', 'ann\nlee', 3),"
                " (2, 'bob', 'Bob', 'Ray', 'bob\nray', 1)"
            )
        )
        await connection.execute(
            text("INSERT INTO groups (id, name, version) VALUES (1, 'staff', 2), (2, 'ops', 1)")
        )
        await connection.execute(
            text("INSERT INTO memberships (group_id, user_id) VALUES (1, 1), (1, 2), (2, 2)")
        )
    before = await _contents(engine)
    assert len(before["memberships"]) == 3

    await upgrade(engine)
    assert await current_revision(engine) == head_revision()
    assert await _contents(engine) == before
    if engine.dialect.name == "sqlite":
        # Still AUTOINCREMENT: a deleted user's id (and so its ETag) never returns.
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM users WHERE id = 2"))
            new_id = await connection.scalar(
                text(
                    "INSERT INTO users (userid, first_name, last_name, search_names, version)"
                    " VALUES ('cy', 'Cy', 'Ng', 'cy\nng', 1) RETURNING id"
                )
            )
        assert new_id == 3


def _upgrade_to(revision: str) -> Callable[[Connection], None]:
    """Alembic's upgrade to `revision`, on a connection given to run_sync."""
    return _migrate(command.upgrade, revision)


def _downgrade_to(revision: str) -> Callable[[Connection], None]:
    """Alembic's downgrade to `revision`, on a connection given to run_sync."""
    return _migrate(command.downgrade, revision)


def _migrate(step: Callable[[Config, str], None], revision: str) -> Callable[[Connection], None]:
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        step(config, revision)

    return run


async def _contents(engine: AsyncEngine) -> dict[str, list[Any]]:
    queries = {
        "users": "SELECT id, userid, first_name, last_name, version FROM users ORDER BY id",
        "groups": "SELECT id, name, version FROM groups ORDER BY id",
        "memberships": "SELECT group_id, user_id FROM memberships ORDER BY group_id, user_id",
    }
    async with engine.connect() as connection:
        return {
            table: [tuple(row) for row in (await connection.execute(text(query))).all()]
            for table, query in queries.items()
        }


async def test_upgrading_keeps_every_audit_entry_and_token(empty_database: Database) -> None:
    """The audit's new columns (server request id, token id) leave older entries whole."""
    engine = empty_database.engine
    config = alembic_config()

    def to_0003(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")

    audit = (
        "SELECT id, at, actor, action, resource, before, after, request_id FROM audit ORDER BY id"
    )
    tokens = "SELECT id, name, role, digest, created_at, expires_at FROM tokens ORDER BY id"
    async with engine.begin() as connection:
        await connection.run_sync(to_0003)
        await connection.execute(
            text(
                "INSERT INTO tokens (name, role, digest, created_at)"
                " VALUES ('ci', 'writer', :digest, '2026-01-02 03:04:05')"
            ),
            {"digest": "a" * 64},
        )
        await connection.execute(
            text(
                "INSERT INTO audit (at, actor, action, resource, before, after, request_id)"
                " VALUES ('2026-01-02 03:04:05', 'ci', 'group.create', 'groups/g', NULL,"
                " '[]', 'trace-1'),"
                " ('2026-01-02 03:04:06', 'anonymous', 'group.delete', 'groups/g', '[]',"
                " NULL, NULL)"
            )
        )
        before = {
            "audit": (await connection.execute(text(audit))).all(),
            "tokens": (await connection.execute(text(tokens))).all(),
        }

    await upgrade(engine)
    assert await current_revision(engine) == head_revision()
    async with engine.begin() as connection:
        assert (await connection.execute(text(audit))).all() == before["audit"]
        assert (await connection.execute(text(tokens))).all() == before["tokens"]
        added = "SELECT server_request_id, token_id FROM audit ORDER BY id"
        assert (await connection.execute(text(added))).all() == [(None, None), (None, None)]
        await connection.execute(text("DELETE FROM audit WHERE id = 2"))
        new_id = await connection.scalar(
            text(
                "INSERT INTO audit (at, actor, action, resource, server_request_id, token_id)"
                " VALUES ('2026-01-03 00:00:00', 'ci', 'group.create', 'groups/h', 'abc', 1)"
                " RETURNING id"
            )
        )
    # No entry id is handed out twice, on SQLite either.
    assert new_id == 3


async def test_only_the_unique_key_serves_an_equality_lookup_of_userids(postgres_url: str) -> None:
    """pg_trgm's GIN class also serves `=`: on the bare column it won the plan of
    `userid = ANY(:names)` and a PUT of 10,000 members took 50 s. Without the
    unique key, and scans made to look dear, no other index may offer itself."""
    database = create_database(Settings(database_url=postgres_url))
    try:
        async with database.engine.connect() as connection:
            transaction = await connection.begin()
            await connection.execute(text("ALTER TABLE users DROP CONSTRAINT uq_users_userid"))
            await connection.execute(text("SET LOCAL enable_seqscan = off"))
            plan = await connection.execute(
                text("EXPLAIN SELECT id FROM users WHERE userid = ANY(:names)"),
                {"names": ["jdoe", "mjones"]},
            )
            lines = [row[0] for row in plan]
            await transaction.rollback()
    finally:
        await database.dispose()
    assert any("Seq Scan on users" in line for line in lines), lines
    assert not any("Index" in line for line in lines), lines


async def test_upgrading_keeps_every_webhook_and_its_deliveries(empty_database: Database) -> None:
    """The previous-secret columns leave endpoints and their queued deliveries whole.

    On SQLite a recreated webhooks table would take its deliveries with it
    (ON DELETE CASCADE).
    """
    engine = empty_database.engine

    webhooks = "SELECT id, url, enabled, secret, cursor FROM webhooks ORDER BY id"
    deliveries = "SELECT webhook_id, event_position, state FROM webhook_deliveries ORDER BY id"
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_to("0006"))
        await connection.execute(
            text(
                "INSERT INTO webhooks (id, url, enabled, created_at, secret, cursor)"
                " VALUES ('wh_1', 'https://example.com/h', true, '2026-01-02 03:04:05',"
                " 'whsec_c2VjcmV0', 7)"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO webhook_deliveries (webhook_id, event_position, event_id, state,"
                " attempts, created_at, next_attempt_at) VALUES ('wh_1', 7, 'evt_1', 'pending',"
                " 0, '2026-01-02 03:04:05', '2026-01-02 03:04:05')"
            )
        )
        before = {
            "webhooks": (await connection.execute(text(webhooks))).all(),
            "deliveries": (await connection.execute(text(deliveries))).all(),
        }

    await upgrade(engine)
    assert await current_revision(engine) == head_revision()
    async with engine.begin() as connection:
        assert (await connection.execute(text(webhooks))).all() == before["webhooks"]
        assert (await connection.execute(text(deliveries))).all() == before["deliveries"]
        added = "SELECT previous_secret, previous_secret_until FROM webhooks"
        assert (await connection.execute(text(added))).all() == [(None, None)]


async def test_upgrading_keeps_every_event_and_the_counter_goes_on(
    empty_database: Database,
) -> None:
    """Events written before alembic 0010 keep their positions; the next one follows them.

    On SQLite the events table is rebuilt with the position as its rowid and
    a trigger advances the counter with each inserted event; the time's
    index is gone on both databases.
    """
    engine = empty_database.engine
    events = "SELECT position, id, type, actor, data FROM events ORDER BY position"
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_to("0009"))
        await connection.execute(text("UPDATE event_counter SET position = 7 WHERE id = 1"))
        await connection.execute(
            text(
                "INSERT INTO events (position, id, type, occurred_at, actor, data) VALUES"
                " (6, 'evt_6', 'group.created', '2026-01-02 03:04:05', 'ann', '{\"name\": \"a\"}'),"
                " (7, 'evt_7', 'group.deleted', '2026-01-02 03:04:06', 'ann', '{\"name\": \"a\"}')"
            )
        )
        before = (await connection.execute(text(events))).all()

    await upgrade(engine)
    async with engine.begin() as connection:
        assert (await connection.execute(text(events))).all() == before
        indexes = await connection.run_sync(lambda c: inspect(c).get_indexes("events"))
        assert [i["name"] for i in indexes if not i.get("duplicates_constraint")] == []
        if engine.dialect.name == "sqlite":
            await connection.execute(
                text(
                    "INSERT INTO events (position, id, type, occurred_at, actor, data) VALUES"
                    " ((SELECT position + 1 FROM event_counter WHERE id = 1), 'evt_8',"
                    " 'group.created', '2026-01-02 03:04:07', 'bob', '{\"name\": \"b\"}')"
                )
            )
            counter = await connection.scalar(text("SELECT position FROM event_counter"))
            assert counter == 8
            # An event put below the counter by hand never moves it back.
            await connection.execute(
                text(
                    "INSERT INTO events (position, id, type, occurred_at, actor, data) VALUES"
                    " (3, 'evt_3', 'group.created', '2026-01-02 03:04:02', 'bob', '{}')"
                )
            )
            counter = await connection.scalar(text("SELECT position FROM event_counter"))
            assert counter == 8
            # The position is the rowid: no index of its own to write.
            listed = (await connection.execute(text("PRAGMA index_list(events)"))).all()
            assert [row[2] for row in listed] == [1]  # the id's unique key alone


@pytest.fixture
async def empty_postgres() -> AsyncIterator[Database]:
    async with _empty_postgres() as database:
        yield database


@pytest.mark.parametrize("revision", ["head", "0009"])
async def test_the_commit_trigger_writes_the_outbox_events_at_each_revision(
    empty_postgres: Database, revision: str
) -> None:
    """The PostgreSQL commit trigger's function as 0010 makes it, and as its downgrade leaves it."""
    engine = empty_postgres.engine
    await upgrade(engine)
    if revision != "head":
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade_to(revision))
    data = {"name": "a"}
    outbox: list[dict[str, Any]] = [
        {"id": "evt_1", "type": "group.created", "actor": "ann", "request_id": None, "data": data},
        {"id": "evt_2", "type": "group.deleted", "actor": "ann", "request_id": "r-2", "data": data},
    ]
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE event_counter SET position = 4 WHERE id = 1"))
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO event_outbox (count, at, events)"
                " VALUES (2, '2026-01-02 03:04:05+00', CAST(:events AS json))"
            ),
            {"events": json.dumps(outbox)},
        )
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT position, id, type, actor, request_id, data::text FROM events"
                    " ORDER BY position"
                )
            )
        ).all()
        assert await connection.scalar(text("SELECT position FROM event_counter")) == 6
        assert await connection.scalar(text("SELECT count(*) FROM event_outbox")) == 0
    assert [tuple(row) for row in rows] == [
        (5, "evt_1", "group.created", "ann", None, '{"name": "a"}'),
        (6, "evt_2", "group.deleted", "ann", "r-2", '{"name": "a"}'),
    ]


async def test_users_pages_keep_room_for_version_bumps(empty_postgres: Database) -> None:
    """PostgreSQL: the users table's fillfactor, so that a bump of a version is a HOT update."""
    engine = empty_postgres.engine
    options = "SELECT reloptions FROM pg_class WHERE relname = 'users'"
    await upgrade(engine)
    async with engine.connect() as connection:
        assert await connection.scalar(text(options)) == ["fillfactor=80"]
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade_to("0010"))
    async with engine.connect() as connection:
        assert await connection.scalar(text(options)) is None
