"""The floor app: GET /users/{userid} answered by a bare FastAPI route over asyncpg.

What the lookup costs with nothing of ours around it: a pool of asyncpg
connections per worker (as many as the server's prepared reader), ONE
prepared statement that builds the user record's JSON in PostgreSQL (the
same text the real server sends), and the uvicorn options of
`grouped-users serve`. The bench reports PostgreSQL lookups as a ratio to
it beside the ratio to the ceiling (bench/ceiling.py, no database at all):
the floor is what any FastAPI app doing this lookup pays for the database.

    python -m bench.floor --port 8101 --workers 2 --database-url postgresql://...
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Response

from bench.ceiling import arguments, bare_app, serve

# The record's JSON, as app.reads.records builds it: groups sorted, none
# shown for a deactivated user.
RECORD_SQL = """
SELECT json_build_object(
    'first_name', u.first_name, 'last_name', u.last_name, 'userid', u.userid,
    'groups', coalesce(
        (SELECT json_agg(g.name ORDER BY g.name)
         FROM memberships m JOIN groups g ON g.id = m.group_id
         WHERE m.user_id = u.id AND u.active),
        '[]'::json))::text
FROM users u WHERE u.userid = $1
"""

DATABASE_URL = "GROUPED_USERS_FLOOR_DATABASE_URL"
# As the server's prepared reader (app.reads.prepared) keeps them: half of
# its default db_pool_size, and no reset query when a connection goes back
# (a single SELECT leaves nothing to reset): a floor for the same work.
POOL_SIZE = 10


async def _no_reset(_connection: asyncpg.Connection) -> None:
    return None


def create_app() -> FastAPI:
    url = os.environ[DATABASE_URL]
    state: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            url, min_size=POOL_SIZE, max_size=POOL_SIZE, reset=_no_reset
        )
        state["pool"] = pool
        try:
            yield
        finally:
            await pool.close()

    app = bare_app(lifespan=lifespan)

    @app.get("/users/{userid}")
    async def get_user(userid: str) -> Response:
        # asyncpg prepares the statement once per connection and keeps it
        # (its statement cache): every later lookup is Bind/Execute only.
        async with state["pool"].acquire() as connection:
            record = await connection.fetchval(RECORD_SQL, userid)
        if record is None:
            return Response(status_code=404)
        return Response(record, media_type="application/json")

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments("python -m bench.floor", __doc__, 8101)
    parser.add_argument("--database-url", required=True, help="postgresql://user@host/db")
    args = parser.parse_args(argv)
    os.environ[DATABASE_URL] = args.database_url
    serve("bench.floor:create_app", args)


if __name__ == "__main__":
    main()
