"""Small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
from sqlalchemy import text

from app.db import Database

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    assert body["title"]
    assert body["detail"]
    return body


async def create_user(
    client: httpx.AsyncClient, userid: str, groups: list[str] | None = None
) -> None:
    body: dict[str, Any] = {"first_name": userid.title(), "last_name": "Tester"}
    if groups is not None:
        body["groups"] = groups
    response = await client.post(f"/users/{userid}", json=body)
    assert response.status_code == 201, response.text


async def create_group(
    client: httpx.AsyncClient, name: str, members: list[str] | None = None
) -> None:
    response = await client.post(f"/groups/{name}")
    assert response.status_code == 201, response.text
    if members:
        response = await client.put(f"/groups/{name}", json=members)
        assert response.status_code == 200, response.text


# Users u1 .. u{count}, all named Ann Lee, put in with one statement (no API,
# no events): enough rows for a scan to take a while, in a second or two.
_MANY_USERS = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO users (userid, first_name, last_name, search_names, version)
SELECT 'u' || i, 'Ann', 'Lee', 'ann lee', 1 FROM n
"""


async def insert_many_users(database: Database, count: int) -> None:
    async with database.writer() as session, session.begin():
        await session.execute(text(_MANY_USERS), {"count": count})


async def members_of(client: httpx.AsyncClient, name: str) -> list[str]:
    """A group's members; [] when GET answers 404 (no members, or no group)."""
    response = await client.get(f"/groups/{name}")
    if response.status_code == 404:
        assert_problem(response, 404, "group_not_found")
        return []
    assert response.status_code == 200, response.text
    members: list[str] = response.json()
    return members


Seen = dict[str, tuple[int, Any, str | None]]


async def seen_by_get(client: httpx.AsyncClient, paths: Iterable[str]) -> Seen:
    """What GET shows at each path (status, JSON, ETag): equal before and after, nothing changed."""
    seen: Seen = {}
    for path in paths:
        response = await client.get(path)
        seen[path] = (response.status_code, response.json(), response.headers.get("etag"))
    return seen
