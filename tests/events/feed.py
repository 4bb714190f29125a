"""Reading the change feed in tests, and rebuilding the directory from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


async def cursor(client: httpx.AsyncClient) -> str:
    response = await client.get("/events/cursor")
    assert response.status_code == 200, response.text
    value: str = response.json()["cursor"]
    return value


async def read_all(
    client: httpx.AsyncClient, after: str | None
) -> tuple[list[dict[str, Any]], str]:
    """Every event after the cursor, page after page, and the cursor to go on from."""
    seen: list[dict[str, Any]] = []
    while True:
        params = {"limit": "1000"} | ({"after": after} if after is not None else {})
        response = await client.get("/events", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["next_cursor"]
        seen += page["items"]
        if not page["items"]:
            return seen, page["next_cursor"]
        after = page["next_cursor"]


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(type, data) of each event, for comparing with what a change should emit."""
    return [(event["type"], event["data"]) for event in events]


@dataclass
class Directory:
    """The users, groups and memberships a consumer rebuilds from the feed alone."""

    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)
    memberships: set[tuple[str, str]] = field(default_factory=set)

    def apply(self, event: dict[str, Any]) -> None:
        kind, data = event["type"], event["data"]
        if kind in ("user.created", "user.updated"):
            self.users[data["userid"]] = (data["first_name"], data["last_name"])
        elif kind == "user.deleted":
            assert not any(u == data["userid"] for _, u in self.memberships), event
            del self.users[data["userid"]]
        elif kind == "group.created":
            assert data["name"] not in self.groups, event
            self.groups.add(data["name"])
        elif kind == "group.deleted":
            assert not any(g == data["name"] for g, _ in self.memberships), event
            self.groups.remove(data["name"])
        elif kind == "membership.added":
            pair = (data["group"], data["userid"])
            assert pair not in self.memberships, event
            assert data["group"] in self.groups, event
            assert data["userid"] in self.users, event
            self.memberships.add(pair)
        elif kind == "membership.removed":
            self.memberships.remove((data["group"], data["userid"]))
        else:
            raise AssertionError(f"unknown event type {kind}")

    def records(self) -> dict[str, dict[str, Any]]:
        """Each user as GET /users/{userid} shows it."""
        return {
            userid: {
                "first_name": first,
                "last_name": last,
                "userid": userid,
                "groups": sorted(g for g, u in self.memberships if u == userid),
            }
            for userid, (first, last) in self.users.items()
        }


async def directory_of(client: httpx.AsyncClient) -> Directory:
    """What the API shows now: GET /users and GET /groups, every page."""
    shown = Directory()
    after: str | None = None
    while True:
        params = {"limit": "1000"} | ({"cursor": after} if after else {})
        page = (await client.get("/users", params=params)).json()
        for record in page["items"]:
            shown.users[record["userid"]] = (record["first_name"], record["last_name"])
            shown.memberships |= {(g, record["userid"]) for g in record["groups"]}
        after = page["next_cursor"]
        if not after:
            break
    while True:
        params = {"limit": "1000"} | ({"cursor": after} if after else {})
        page = (await client.get("/groups", params=params)).json()
        shown.groups |= {group["name"] for group in page["items"]}
        after = page["next_cursor"]
        if not after:
            return shown
