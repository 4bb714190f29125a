"""PostgreSQL: leave room in the users table's pages for the versions that bumps write

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Every change of a user's groups bumps the user's version (its ETag), an
UPDATE that PostgreSQL writes as a new row version. With full pages the
new version goes to another page and every index of the table gets an
entry for it: the unique key, and the two trigram indexes of searches
(alembic 0005, 0007), each a dozen entries per row. With room on the page
the update is HOT (heap-only): no index is touched, as no indexed column
changed. A PUT of 10,000 members bumps 20,000 users: in `make bench`'s
directory that UPDATE took 190-220 ms of a 0.7-0.95 s request, and the
request 0.6-0.8 s at 80 %.

Pages written from now on keep 20 % free; existing rows move into such
pages as they are updated, or at once with `VACUUM FULL users` (which
locks the table while it rewrites it).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE users SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE users RESET (fillfactor)")
