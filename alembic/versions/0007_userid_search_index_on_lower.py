"""PostgreSQL: the userid trigram index on lower(userid), out of reach of equality lookups

pg_trgm's GIN operator class also serves `=`, so the planner could pick the
index on the bare column for `userid = ANY(:names)`, the lookup of every
member-list write: in a generic plan (a prepared statement's sixth run) it
guesses ten names, and with ten thousand every name's common trigrams
matched the whole table, 50 s for one PUT of a group's members. On
lower(userid) only a search, which asks for that expression, can use it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _has_index(name: str) -> bool:
    found = op.get_bind().execute(text("SELECT to_regclass(:name)"), {"name": name})
    return found.scalar() is not None


def upgrade() -> None:
    # SQLite's search index (an FTS5 table, asked by name) has no such effect.
    if op.get_bind().dialect.name != "postgresql" or not _has_index("ix_users_userid_trgm"):
        return
    op.execute("DROP INDEX ix_users_userid_trgm")
    op.execute(
        "CREATE INDEX ix_users_userid_lower_trgm ON users USING gin (lower(userid) gin_trgm_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or not _has_index("ix_users_userid_lower_trgm"):
        return
    op.execute("DROP INDEX ix_users_userid_lower_trgm")
    op.execute("CREATE INDEX ix_users_userid_trgm ON users USING gin (userid gin_trgm_ops)")
