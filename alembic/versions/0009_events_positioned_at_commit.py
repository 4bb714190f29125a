"""PostgreSQL: a transaction's events take their feed positions inside its COMMIT

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Run by COMMIT itself (a deferred constraint trigger), after every other
# statement of the transaction: the counter row is locked from here to the
# end of the commit, never across a round trip to the client.
_PUBLISH = """
CREATE FUNCTION grouped_users_publish_events() RETURNS trigger LANGUAGE plpgsql AS $$
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
_TRIGGER = """
CREATE CONSTRAINT TRIGGER publish_at_commit AFTER INSERT ON event_outbox
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION grouped_users_publish_events()
"""


def upgrade() -> None:
    # Each row lives from the commit statement to its COMMIT: never kept, so
    # on PostgreSQL not written to the WAL either (UNLOGGED).
    op.create_table(
        "event_outbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_outbox")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE event_outbox SET UNLOGGED")
        op.execute(_PUBLISH)
        op.execute(_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER publish_at_commit ON event_outbox")
        op.execute("DROP FUNCTION grouped_users_publish_events()")
    op.drop_table("event_outbox")
