"""A SCIM answer carries a bounded number of members; a large one is built off the event loop."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from app.api import create_app
from app.db import Database
from app.models import Group, Membership, User
from app.scim import endpoints, resources
from app.settings import Settings

pytestmark = pytest.mark.anyio

SCIM = {"Content-Type": "application/scim+json"}
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIMIT = 2000
BIG, SMALL = 3000, 1500
GROUPS = ("big", "empty", "small")


async def seed(database: Database) -> None:
    """Users u0000..u2999; "big" has all of them, "small" the first 1500, "empty" none."""
    async with database.engine.begin() as connection:
        await connection.execute(
            insert(User),
            [
                {
                    "userid": f"u{n:04}",
                    "first_name": "U",
                    "last_name": f"N{n}",
                    "search_names": f"u\nn{n}",
                    "version": 1,
                }
                for n in range(BIG)
            ],
        )
        await connection.execute(
            insert(Group),
            [{"name": name, "display_key": name, "version": 1} for name in GROUPS],
        )
        users = (await connection.execute(select(User.id).order_by(User.userid))).scalars().all()
        groups = dict((await connection.execute(select(Group.name, Group.id))).all())
        pairs = [{"group_id": groups["big"], "user_id": u} for u in users]
        pairs += [{"group_id": groups["small"], "user_id": u} for u in users[:SMALL]]
        await connection.execute(insert(Membership), pairs)


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    await seed(database)
    app = create_app(settings.model_copy(update={"max_list_length": LIMIT}), database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


async def get(client: httpx.AsyncClient, url: str, **params: Any) -> Any:
    response = await client.get(url, params=params, headers=SCIM)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_group_beyond_the_bound_answers_without_members(
    client: httpx.AsyncClient,
) -> None:
    big = await get(client, "/scim/v2/Groups/big")
    assert big["id"] == "big"
    assert big["displayName"] == "big"
    assert "members" not in big
    # Asking for them by name changes nothing: the bound holds.
    asked = await get(client, "/scim/v2/Groups/big", attributes="members")
    assert "members" not in asked

    small = await get(client, "/scim/v2/Groups/small")
    assert [m["value"] for m in small["members"]] == [f"u{n:04}" for n in range(SMALL)]

    # The members of a large group, a page at a time, from /Users.
    page = await get(
        client, "/scim/v2/Users", filter='groups.value eq "big"', startIndex=2001, count=1000
    )
    assert page["totalResults"] == BIG
    assert [r["id"] for r in page["Resources"]] == [f"u{n:04}" for n in range(2000, BIG)]


async def test_a_list_carries_members_within_the_bound_in_all(client: httpx.AsyncClient) -> None:
    listed = await get(client, "/scim/v2/Groups")
    members = {g["id"]: len(g["members"]) if "members" in g else None for g in listed["Resources"]}
    # "big" alone passes the bound; "small" fits, and "empty" has none to show.
    assert members == {"big": None, "empty": None, "small": SMALL}
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        # Only groups have a displayName here.
        "filter": "displayName pr",
    }
    searched = await client.post("/scim/v2/.search", json=body, headers=SCIM)
    assert searched.status_code == 200, searched.text
    shown = [len(r.get("members", [])) for r in searched.json()["Resources"]]
    assert sum(shown) <= LIMIT
    assert sorted(shown) == [0, 0, SMALL]


def threads_of(monkeypatch: pytest.MonkeyPatch, builder: str) -> list[int]:
    """The threads that each call of this resource builder of the endpoints runs on."""
    threads: list[int] = []
    build = getattr(resources, builder)

    def spied(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return build(*args, **kwargs)

    monkeypatch.setattr(endpoints, builder, spied)
    return threads


async def test_a_large_answer_is_built_off_the_event_loop(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = threads_of(monkeypatch, "group_to_scim")
    await get(client, "/scim/v2/Groups/small")
    await get(client, "/scim/v2/Groups/empty")
    assert threads[0] != threading.get_ident()
    # A small answer costs no thread hop.
    assert threads[1] == threading.get_ident()


async def test_a_large_page_of_users_is_built_off_the_event_loop(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = threads_of(monkeypatch, "user_to_scim")
    # Users only: a page of many resources, each a model, with no members.
    large = endpoints.RESOURCES_ON_THREAD + 1
    await get(client, "/scim/v2/Users", count=large)
    assert len(threads) == large
    assert threading.get_ident() not in threads
    threads.clear()
    await get(client, "/scim/v2/Users", count=2)
    # A small answer costs no thread hop.
    assert threads == [threading.get_ident()] * 2


async def test_a_patch_of_a_large_group_answers_within_the_bound(
    client: httpx.AsyncClient,
) -> None:
    add = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Everyone"}],
    }
    patched = await client.patch("/scim/v2/Groups/big", json=add, headers=SCIM)
    assert patched.status_code == 200, patched.text
    assert patched.json()["displayName"] == "Everyone"
    assert "members" not in patched.json()


async def test_discovery_states_the_bound(client: httpx.AsyncClient) -> None:
    schema = await get(client, f"/scim/v2/Schemas/{GROUP_SCHEMA}")
    (members,) = [a for a in schema["attributes"] if a["name"] == "members"]
    assert str(LIMIT) in members["description"]
    assert "groups.value" in members["description"]
