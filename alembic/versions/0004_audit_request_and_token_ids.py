"""Audit entries: the server's own request id and the actor's token id

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Nullable columns added in place on both databases: the entries written
    # before keep every field, and show null for what was not recorded then.
    op.add_column("audit", sa.Column("server_request_id", sa.String(128), nullable=True))
    op.add_column("audit", sa.Column("token_id", ID, nullable=True))


def downgrade() -> None:
    # Rebuilt on SQLite: keep AUTOINCREMENT, so that no entry id is given twice.
    with op.batch_alter_table("audit", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("token_id")
        batch.drop_column("server_request_id")
