"""A substring index for GET /users?q=: FTS5 trigram on SQLite, pg_trgm on PostgreSQL

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# users_search (SQLite) and these (PostgreSQL) are not models: app.reads.users
# queries the first by name, and the test that compares the migrated schema
# with the models leaves them out.
PG_INDEXES = ("ix_users_userid_trgm", "ix_users_search_names_trgm")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _upgrade_sqlite()
    else:
        _upgrade_postgresql()


def _upgrade_sqlite() -> None:
    # An external-content index: it stores trigrams, not a second copy of
    # the names; triggers keep it in step with every writer of users.
    op.execute(
        "CREATE VIRTUAL TABLE users_search USING fts5("
        "userid, search_names, content='users', content_rowid='id', tokenize='trigram')"
    )
    op.execute(
        "CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN "
        "INSERT INTO users_search(rowid, userid, search_names) "
        "VALUES (new.id, new.userid, new.search_names); END"
    )
    op.execute(
        "CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN "
        "INSERT INTO users_search(users_search, rowid, userid, search_names) "
        "VALUES ('delete', old.id, old.userid, old.search_names); END"
    )
    # Only a change of the searched columns: a version bump costs nothing more.
    op.execute(
        "CREATE TRIGGER users_search_update AFTER UPDATE OF userid, search_names ON users BEGIN "
        "INSERT INTO users_search(users_search, rowid, userid, search_names) "
        "VALUES ('delete', old.id, old.userid, old.search_names); "
        "INSERT INTO users_search(rowid, userid, search_names) "
        "VALUES (new.id, new.userid, new.search_names); END"
    )
    op.execute("INSERT INTO users_search(users_search) VALUES ('rebuild')")


def _upgrade_postgresql() -> None:
    bind = op.get_bind()
    available = bind.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"
    ).first()
    if available is None:
        # Searches still work, as scans off the event loop: the index only speeds them.
        return
    # CREATE EXTENSION needs a privilege a directory's role may lack: try it in
    # a savepoint, so that a refusal leaves the rest of the upgrade whole.
    savepoint = bind.begin_nested()
    try:
        bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError:
        # No index, the same answers.
        savepoint.rollback()
        return
    savepoint.commit()
    op.execute("CREATE INDEX ix_users_userid_trgm ON users USING gin (userid gin_trgm_ops)")
    op.execute(
        "CREATE INDEX ix_users_search_names_trgm ON users USING gin (search_names gin_trgm_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS users_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS users_search")
        return
    for index in PG_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {index}")
    # The extension stays: other schemas of the database may use it.
