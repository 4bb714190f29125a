"""Small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

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
