"""Events: fewer indexes to write, and on SQLite the counter kept by the database

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

Every event written updated four B-trees on SQLite (the table's rowid, the
position's key, the id's key, the time's index) and three on PostgreSQL.
Now:

- the time's index is gone on both: only the purge used it, and it reads
  positions in order instead (app.repository.events.last_before);
- on SQLite the position is the rowid itself (INTEGER PRIMARY KEY), and a
  trigger advances the counter row as each event is inserted, so a
  transaction writes its events in one statement rather than two. SQLite
  has one writer at a time: positions still follow commit order, and a
  rolled-back transaction (or savepoint) takes its counter updates with it;
- on PostgreSQL the commit's trigger (alembic 0009) reads the outbox's
  events as records in one pass (`json_to_recordset`) rather than each
  field of each element by path: a fifth less of a 20,000-event COMMIT.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COPY = """
INSERT INTO events_rebuilt (position, id, type, occurred_at, actor, request_id, data)
SELECT position, id, type, occurred_at, actor, request_id, data FROM events
"""

# The commit trigger's function (alembic 0009) with the events read as
# records; _PUBLISHED_BY_0009 is the one it replaces, for the downgrade
# (a migration keeps the text it replaces: the file of 0009 may change).
_PUBLISH = """
CREATE OR REPLACE FUNCTION grouped_users_publish_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
BEGIN
    UPDATE event_counter SET position = position + NEW.count WHERE id = 1
        RETURNING position INTO last;
    INSERT INTO events (position, id, type, occurred_at, actor, request_id, data)
    SELECT last - NEW.count + e.n, e.id, e.type, NEW.at, e.actor, e.request_id, e.data
    FROM ROWS FROM (json_to_recordset(NEW.events)
        AS (id text, type text, actor text, request_id text, data json)) WITH ORDINALITY
        AS e(id, type, actor, request_id, data, n);
    DELETE FROM event_outbox WHERE id = NEW.id;
    PERFORM pg_notify('grouped_users_events', last::text);
    RETURN NULL;
END
$$
"""
_PUBLISHED_BY_0009 = """
CREATE OR REPLACE FUNCTION grouped_users_publish_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
BEGIN
    UPDATE event_counter SET position = position + NEW.count WHERE id = 1
        RETURNING position INTO last;
    INSERT INTO events (position, id, type, occurred_at, actor, request_id, data)
    SELECT last - NEW.count + e.n, e.item->>'id', e.item->>'type', NEW.at,
           e.item->>'actor', e.item->>'request_id', e.item->'data'
    FROM json_array_elements(NEW.events) WITH ORDINALITY AS e(item, n);
    DELETE FROM event_outbox WHERE id = NEW.id;
    PERFORM pg_notify('grouped_users_events', last::text);
    RETURN NULL;
END
$$
"""

# Never backwards: an event inserted below the counter by hand (a repair)
# must not make later ones reuse positions that consumers have passed.
_ADVANCE = """
CREATE TRIGGER events_advance_counter AFTER INSERT ON events
BEGIN
    UPDATE event_counter SET position = max(position, NEW.position) WHERE id = 1;
END
"""


def _events_table(name: str, position: sa.types.TypeEngine[int]) -> None:
    op.create_table(
        name,
        sa.Column("position", position, autoincrement=False, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("position", name="pk_events"),
        sa.UniqueConstraint("id", name="uq_events_id"),
    )


def _rebuild_sqlite_events(position: sa.types.TypeEngine[int]) -> None:
    """Copy the events into a table whose position column is of this type."""
    _events_table("events_rebuilt", position)
    op.execute(_COPY)
    op.drop_table("events")
    op.rename_table("events_rebuilt", "events")


def upgrade() -> None:
    op.drop_index("ix_events_occurred_at", table_name="events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PUBLISH)
    if op.get_bind().dialect.name != "sqlite":
        return
    # A column declared exactly INTEGER PRIMARY KEY is the rowid: one B-tree.
    _rebuild_sqlite_events(sa.Integer())
    op.execute(_ADVANCE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PUBLISHED_BY_0009)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER events_advance_counter")
        _rebuild_sqlite_events(sa.BigInteger())
    op.create_index("ix_events_occurred_at", "events", ["occurred_at"])
