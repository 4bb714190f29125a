"""SCIM attributes: active, externalId, displayName and emails of users; displayName of groups

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TEXT = sa.String(256)
KEY = sa.String(768)


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN on both databases: in batch mode
    # SQLite would rebuild users for the expression default, losing its
    # AUTOINCREMENT (ids of deleted users, and their ETags, came back).
    op.add_column(
        "users", sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.add_column("users", sa.Column("external_id", TEXT, nullable=True))
    op.add_column("users", sa.Column("display_name", TEXT, nullable=True))
    op.add_column("users", sa.Column("display_key", KEY, nullable=True))
    op.add_column("groups", sa.Column("display_name", TEXT, nullable=True))
    op.add_column("groups", sa.Column("display_key", KEY, nullable=True))
    op.add_column("groups", sa.Column("external_id", TEXT, nullable=True))
    # A group made before SCIM shows its name: that is its key (names are lower case).
    op.execute("UPDATE groups SET display_key = name")
    # A unique index, not a constraint: SQLite creates it in place, where a
    # constraint means rebuilding groups (and, foreign keys being on, losing
    # every membership when the old table is dropped).
    op.create_index("ix_groups_display_key", "groups", ["display_key"], unique=True)
    op.create_table(
        "user_emails",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("value", TEXT, nullable=False),
        sa.Column("value_key", KEY, nullable=False),
        sa.Column("type", TEXT, nullable=True),
        sa.Column("is_primary", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_emails_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "position", name=op.f("pk_user_emails")),
    )
    op.create_index("ix_user_emails_value_key", "user_emails", ["value_key"])


def downgrade() -> None:
    op.drop_index("ix_user_emails_value_key", table_name="user_emails")
    op.drop_table("user_emails")
    op.drop_index("ix_groups_display_key", table_name="groups")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("external_id")
        batch.drop_column("display_key")
        batch.drop_column("display_name")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("display_key")
        batch.drop_column("display_name")
        batch.drop_column("external_id")
        batch.drop_column("active")
