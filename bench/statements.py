"""Statements per write request on a database: what each round trip costs, counted.

The bench runs this against its seeded PostgreSQL database after the load
runs: the real app in-process (httpx over ASGI), one POST of a new user in
two groups, a PATCH of its last name, a DELETE, each counted through the
engine's before_cursor_execute event. BEGIN and COMMIT are left out (they
are in every transaction); tests/test_queries.py pins the same numbers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from app.api import create_app
from app.db import Database, create_database
from app.settings import Settings

NOISE = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA)\b", re.IGNORECASE)


@contextmanager
def counting(database: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        if not NOISE.match(sql):
            statements.append(sql)

    target = database.engine.sync_engine
    event.listen(target, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(target, "before_cursor_execute", record)


async def count_writes(database_url: str, *, userid: str, groups: list[str]) -> dict[str, int]:
    """{request: statements} for POST, PATCH and DELETE of `userid` (which must not exist)."""
    settings = Settings(database_url=database_url, auth="disabled")
    database = create_database(settings)
    app = create_app(settings, database=database)
    transport = httpx.ASGITransport(app=app)
    counts: dict[str, int] = {}
    requests = [
        ("POST /users/{new}", "POST", {"first_name": "S", "last_name": "T", "groups": groups}),
        ("PATCH /users/{id}", "PATCH", {"last_name": "Renamed"}),
        ("DELETE /users/{id}", "DELETE", None),
    ]
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            for label, method, body in requests:
                headers = (
                    {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
                )
                with counting(database) as statements:
                    answer = await client.request(
                        method, f"/users/{userid}", json=body, headers=headers
                    )
                if answer.status_code >= 300:
                    raise RuntimeError(f"{label}: {answer.status_code} {answer.text[:300]}")
                counts[label] = len(statements)
    finally:
        await database.dispose()
    return counts


def run(database_url: str, *, userid: str, groups: list[str]) -> dict[str, int]:
    return asyncio.run(count_writes(database_url, userid=userid, groups=groups))
