"""Deactivation over SCIM ends group-based access in the core API; reactivation brings it back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from app.db import Database
from app.service import bulk

pytestmark = pytest.mark.anyio

SCIM = {"Content-Type": "application/scim+json"}
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


# (deactivate, reactivate) as each identity provider sends them.
SHAPES = {
    # Okta: a replace without a path, the value an object of attributes.
    "okta-pathless": (
        patch({"op": "replace", "value": {"active": False}}),
        patch({"op": "replace", "value": {"active": True}}),
    ),
    "okta-path": (
        patch({"op": "replace", "path": "active", "value": False}),
        patch({"op": "replace", "path": "active", "value": True}),
    ),
    # Entra ID: "Replace" with a capital, and the boolean as a string.
    "entra": (
        patch({"op": "Replace", "path": "active", "value": "False"}),
        patch({"op": "Replace", "path": "active", "value": "True"}),
    ),
}


async def scim_patch(client: httpx.AsyncClient, userid: str, body: dict[str, Any]) -> Any:
    response = await client.patch(f"/scim/v2/Users/{userid}", json=body, headers=SCIM)
    assert response.status_code == 200, response.text
    return response.json()


async def make_directory(client: httpx.AsyncClient) -> None:
    """dade in eng and ops (ops has no one else), kate in eng."""
    for group in ("eng", "ops"):
        assert (await client.post(f"/groups/{group}")).status_code == 201
    for userid, groups in (("dade", ["eng", "ops"]), ("kate", ["eng"])):
        record = {"first_name": userid.title(), "last_name": "Doe", "groups": groups}
        made = await client.post(f"/users/{userid}", json=record)
        assert made.status_code == 201, made.text


async def core_view(client: httpx.AsyncClient) -> dict[str, Any]:
    """What a service granting access by group sees of the directory, with ETags."""
    dade = await client.get("/users/dade")
    eng = await client.get("/groups/eng")
    ops = await client.get("/groups/ops")
    listed = (await client.get("/users")).json()["items"]
    searched = (await client.get("/users", params={"q": "dade"})).json()["items"]
    in_eng = (await client.get("/users", params={"group": "eng"})).json()["items"]
    in_ops = (await client.get("/users", params={"group": "ops"})).json()["items"]
    counts = (await client.get("/groups")).json()["items"]
    return {
        "dade": dade.json()["groups"],
        "eng": eng.json() if eng.status_code == 200 else eng.status_code,
        "ops": ops.json() if ops.status_code == 200 else ops.status_code,
        "listed": {user["userid"]: user["groups"] for user in listed},
        "searched": [user["groups"] for user in searched],
        "in_eng": [user["userid"] for user in in_eng],
        "in_ops": [user["userid"] for user in in_ops],
        "counts": {group["name"]: group["member_count"] for group in counts},
        "etags": (dade.headers["ETag"], eng.headers["ETag"], ops.headers.get("ETag")),
    }


ACTIVE = {
    "dade": ["eng", "ops"],
    "eng": ["dade", "kate"],
    "ops": ["dade"],
    "listed": {"dade": ["eng", "ops"], "kate": ["eng"]},
    "searched": [["eng", "ops"]],
    "in_eng": ["dade", "kate"],
    "in_ops": ["dade"],
    "counts": {"eng": 2, "ops": 1},
}
INACTIVE = {
    "dade": [],
    "eng": ["kate"],
    # Its only member is deactivated: a group with no members.
    "ops": 404,
    "listed": {"dade": [], "kate": ["eng"]},
    "searched": [[]],
    "in_eng": ["kate"],
    "in_ops": [],
    "counts": {"eng": 1, "ops": 0},
}


def without_etags(view: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in view.items() if key != "etags"}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_deactivation_hides_memberships_until_reactivation(
    client: httpx.AsyncClient, shape: str
) -> None:
    deactivate, reactivate = SHAPES[shape]
    await make_directory(client)
    before = await core_view(client)
    assert without_etags(before) == ACTIVE

    cursor = (await client.get("/events/cursor")).json()["cursor"]
    off = await scim_patch(client, "dade", deactivate)
    assert off["active"] is False
    # The feed follows the core API: the memberships go, then the update.
    feed = (await client.get("/events", params={"after": cursor})).json()
    assert [(e["type"], e["data"].get("group")) for e in feed["items"]] == [
        ("membership.removed", "eng"),
        ("membership.removed", "ops"),
        ("user.updated", None),
    ]
    assert feed["items"][-1]["data"]["groups"] == []
    hidden = await core_view(client)
    assert without_etags(hidden) == INACTIVE
    # The record keeps its four fields.
    record = (await client.get("/users/dade")).json()
    assert record == {"first_name": "Dade", "last_name": "Doe", "userid": "dade", "groups": []}
    # What clients cached is stale: the user's and its groups' ETags changed.
    assert hidden["etags"][:2] != before["etags"][:2]
    for url, seen in (("/users/dade", before["etags"][0]), ("/groups/eng", before["etags"][1])):
        again = await client.get(url, headers={"If-None-Match": seen})
        assert again.status_code == 200, url

    # SCIM shows what the identity provider provisioned: the stored memberships.
    scim_user = (await client.get("/scim/v2/Users/dade")).json()
    assert [group["value"] for group in scim_user["groups"]] == ["eng", "ops"]
    ops = (await client.get("/scim/v2/Groups/ops")).json()
    assert [member["value"] for member in ops["members"]] == ["dade"]

    on = await scim_patch(client, "dade", reactivate)
    assert on["active"] is True
    feed = (await client.get("/events", params={"after": feed["next_cursor"]})).json()
    assert [(e["type"], e["data"].get("group")) for e in feed["items"]] == [
        ("membership.added", "eng"),
        ("membership.added", "ops"),
        ("user.updated", None),
    ]
    back = await core_view(client)
    assert without_etags(back) == ACTIVE
    assert back["etags"][:2] != hidden["etags"][:2]

    entries = (await client.get("/audit", params={"resource": "users/dade"})).json()["items"]
    assert [(e["action"], e["before"]["active"], e["after"]["active"]) for e in entries[:2]] == [
        ("scim.user.patch", False, True),
        ("scim.user.patch", True, False),
    ]


async def test_a_put_of_the_whole_user_deactivates_as_a_patch(client: httpx.AsyncClient) -> None:
    await make_directory(client)
    user = {
        "schemas": [USER],
        "userName": "dade",
        "name": {"givenName": "Dade", "familyName": "Doe"},
        "active": False,
    }
    put = await client.put("/scim/v2/Users/dade", json=user, headers=SCIM)
    assert put.status_code == 200, put.text
    assert without_etags(await core_view(client)) == INACTIVE
    put = await client.put("/scim/v2/Users/dade", json={**user, "active": True}, headers=SCIM)
    assert put.status_code == 200, put.text
    assert without_etags(await core_view(client)) == ACTIVE


async def test_core_writes_edit_the_stored_memberships_of_an_inactive_user(
    client: httpx.AsyncClient,
) -> None:
    await make_directory(client)
    deactivate, reactivate = SHAPES["okta-pathless"]
    await scim_patch(client, "dade", deactivate)

    # The answer shows the record as GET does under the same ETag: no groups.
    put = await client.put("/users/dade", json={"first_name": "Dade", "last_name": "Doe"})
    assert put.status_code == 200, put.text
    assert put.json()["groups"] == []
    patched = await client.patch("/users/dade", json={"groups": ["ops"]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["groups"] == []
    got = await client.get("/users/dade")
    assert (got.json(), got.headers["ETag"]) == (patched.json(), patched.headers["ETag"])

    members = await client.put("/groups/eng", json=["dade", "kate"])
    assert members.status_code == 200, members.text
    assert members.json() == ["kate"]
    got = await client.get("/groups/eng")
    assert (got.json(), got.headers["ETag"]) == (members.json(), members.headers["ETag"])

    # SCIM sees what is stored; the core API, on reactivation, too.
    scim_user = (await client.get("/scim/v2/Users/dade")).json()
    assert [group["value"] for group in scim_user["groups"]] == ["eng", "ops"]
    entries = (await client.get("/audit", params={"resource": "users/dade"})).json()["items"]
    assert entries[0]["after"]["groups"] == ["ops"]
    await scim_patch(client, "dade", reactivate)
    assert (await client.get("/users/dade")).json()["groups"] == ["eng", "ops"]
    assert (await client.get("/groups/eng")).json() == ["dade", "kate"]


async def test_a_change_that_keeps_active_keeps_the_groups_versions(
    client: httpx.AsyncClient,
) -> None:
    await make_directory(client)
    eng = (await client.get("/groups/eng")).headers["ETag"]
    renamed = patch({"op": "replace", "path": "displayName", "value": "Dade D."})
    await scim_patch(client, "dade", renamed)
    assert (await client.get("/groups/eng")).headers["ETag"] == eng


class Collected:
    def __init__(self) -> None:
        self.users: list[bulk.ExportedUser] = []

    def start(self, total: int) -> None:
        del total

    def write(self, users: Sequence[bulk.ExportedUser]) -> None:
        self.users.extend(users)


async def test_an_export_shows_the_records_as_get_does(
    client: httpx.AsyncClient, database: Database
) -> None:
    await make_directory(client)
    await scim_patch(client, "dade", SHAPES["entra"][0])
    sink = Collected()
    async with database.reader() as session:
        await bulk.export_users(session, sink=sink)
    # Importing the file elsewhere must not give the deactivated user access back.
    assert [(user[0], user[3]) for user in sink.users] == [("dade", []), ("kate", ["eng"])]
