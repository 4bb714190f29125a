"""The request sequences Okta and Entra ID send (from their SCIM guides), and core API agreement."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

SCIM = {"Content-Type": "application/scim+json"}
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


async def call(
    client: httpx.AsyncClient, method: str, url: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, url, json=body, headers=SCIM)


def okta_user(active: bool = True) -> dict[str, Any]:
    return {
        "schemas": [USER],
        "userName": "Dade.Murphy@example.com",
        "name": {"givenName": "Dade", "familyName": "Murphy"},
        "emails": [{"primary": True, "value": "dade.murphy@example.com", "type": "work"}],
        "displayName": "Dade Murphy",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": active,
    }


async def test_okta_user_lifecycle(client: httpx.AsyncClient) -> None:
    lookup = (
        "/scim/v2/Users?filter=userName%20eq%20%22dade.murphy%40example.com%22"
        "&startIndex=1&count=100"
    )
    missing = await call(client, "GET", lookup)
    assert missing.status_code == 200
    assert missing.json() == {
        "schemas": [LIST],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
    }

    created = await call(client, "POST", "/scim/v2/Users", okta_user())
    assert created.status_code == 201, created.text
    assert created.headers["Content-Type"] == "application/scim+json"
    body = created.json()
    assert body["id"] == "dade.murphy@example.com"
    assert body["userName"] == "dade.murphy@example.com"
    assert body["name"] == {"givenName": "Dade", "familyName": "Murphy"}
    assert body["active"] is True
    assert body["externalId"] == "00ujl29u0le5T6Aj10h7"
    assert body["emails"] == [{"value": "dade.murphy@example.com", "type": "work", "primary": True}]
    assert "password" not in body
    assert body["meta"]["version"] == created.headers["ETag"]
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["location"] == created.headers["Location"]
    assert body["meta"]["created"] == body["meta"]["lastModified"]
    assert created.headers["Location"].endswith("/scim/v2/Users/dade.murphy@example.com")

    again = await call(client, "POST", "/scim/v2/Users", okta_user())
    assert again.status_code == 409
    assert again.json()["scimType"] == "uniqueness"

    found = (await call(client, "GET", lookup)).json()
    assert found["totalResults"] == 1
    assert found["Resources"][0]["id"] == body["id"]

    fetched = await call(client, "GET", "/scim/v2/Users/dade.murphy@example.com")
    assert fetched.status_code == 200
    assert fetched.json()["displayName"] == "Dade Murphy"

    # Okta deactivates with a path-less replace, and can PUT the whole user.
    patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    off = await call(client, "PATCH", "/scim/v2/Users/dade.murphy@example.com", patch)
    assert off.status_code == 200
    assert off.json()["active"] is False
    put_on = await call(client, "PUT", "/scim/v2/Users/dade.murphy@example.com", okta_user(True))
    assert put_on.status_code == 200
    assert put_on.json()["active"] is True
    put_off = await call(client, "PUT", "/scim/v2/Users/dade.murphy@example.com", okta_user(False))
    assert put_off.json()["active"] is False
    inactive = await call(client, "GET", "/scim/v2/Users?filter=active%20eq%20false")
    assert [r["id"] for r in inactive.json()["Resources"]] == ["dade.murphy@example.com"]

    # The core API sees the same user, with its four fields only.
    core = await client.get("/users/dade.murphy@example.com", headers={"If-None-Match": '"none"'})
    assert core.status_code == 200, core.text
    assert core.json() == {
            "first_name": "Dade", "last_name": "Murphy",
            "userid": "dade.murphy@example.com", "groups": [],
        }  # fmt: skip


async def test_entra_user_and_group_sequence(client: httpx.AsyncClient) -> None:
    user = {
        "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee@testuser.com",
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {"familyName": "familyName", "givenName": "givenName"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"},
    }
    created = await call(client, "POST", "/scim/v2/Users", user)
    assert created.status_code == 201, created.text
    userid = created.json()["id"]
    assert userid == "test_user_ab6490ee@testuser.com"

    by_email = await call(
        client,
        "GET",
        '/scim/v2/Users?filter=emails[type eq "work"].value eq "test_user_fd0ea19b@testuser.com"',
    )
    assert by_email.json()["totalResults"] == 1

    # "Replace" and the string "False", as Entra sends them; atomic on failure.
    rename = {
        "schemas": [PATCH],
        "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            {"op": "Add", "path": "displayName", "value": "Test User"},
        ],
    }
    patched = await call(client, "PATCH", f"/scim/v2/Users/{userid}", rename)
    assert patched.status_code == 200, patched.text
    assert patched.json()["active"] is False
    assert patched.json()["name"]["familyName"] == "updatedFamilyName"
    failing = {
        "schemas": [PATCH],
        "Operations": [
            {"op": "Replace", "path": "active", "value": "True"},
            {"op": "Replace", "path": "userName", "value": "someone.else"},
        ],
    }
    refused = await call(client, "PATCH", f"/scim/v2/Users/{userid}", failing)
    assert refused.status_code == 400
    assert refused.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    still = (await call(client, "GET", f"/scim/v2/Users/{userid}")).json()
    assert still["active"] is False
    assert still["meta"]["version"] == patched.json()["meta"]["version"]

    group = {
        "schemas": [GROUP],
        "externalId": "8aa1a0c0",
        "displayName": "Sales - EMEA",
        "members": [],
    }
    made = await call(client, "POST", "/scim/v2/Groups", group)
    assert made.status_code == 201, made.text
    assert made.json()["id"] == "sales-emea"
    same = await call(client, "POST", "/scim/v2/Groups", {**group, "displayName": "SALES - emea"})
    assert same.status_code == 409
    assert same.json()["scimType"] == "uniqueness"

    lookup = await call(
        client,
        "GET",
        '/scim/v2/Groups?excludedAttributes=members&filter=displayName eq "Sales - EMEA"',
    )
    assert lookup.status_code == 200
    assert [(r["id"], "members" in r) for r in lookup.json()["Resources"]] == [
        ("sales-emea", False)
    ]

    add = {
        "schemas": [PATCH],
        "Operations": [{"op": "Add", "path": "members", "value": [{"value": userid}]}],
    }
    assert (await call(client, "PATCH", "/scim/v2/Groups/sales-emea", add)).status_code == 200
    members = (await call(client, "GET", "/scim/v2/Groups/sales-emea")).json()["members"]
    assert [m["value"] for m in members] == [userid]
    core = await client.get(f"/users/{userid}", headers={"If-None-Match": '"none"'})
    assert core.status_code == 200, core.text
    # Deactivated above: the core API shows no groups until reactivation.
    assert core.json()["groups"] == []
    by_member = await call(client, "GET", f'/scim/v2/Groups?filter=members.value eq "{userid}"')
    assert by_member.json()["totalResults"] == 1

    remove = {
        "schemas": [PATCH],
        "Operations": [{"op": "Remove", "path": f'members[value eq "{userid}"]'}],
    }
    assert (await call(client, "PATCH", "/scim/v2/Groups/sales-emea", remove)).status_code == 200
    after = (await call(client, "GET", "/scim/v2/Groups/sales-emea")).json()
    assert "members" not in after

    rename_group = {
        "schemas": [PATCH],
        "Operations": [{"op": "Replace", "path": "displayName", "value": "Sales EMEA"}],
    }
    renamed = await call(client, "PATCH", "/scim/v2/Groups/sales-emea", rename_group)
    assert renamed.json()["displayName"] == "Sales EMEA"
    assert renamed.json()["id"] == "sales-emea"

    assert (await call(client, "DELETE", f"/scim/v2/Users/{userid}")).status_code == 204
    assert (await call(client, "GET", f"/scim/v2/Users/{userid}")).status_code == 404


async def test_core_groups_show_in_scim(client: httpx.AsyncClient) -> None:
    assert (await client.post("/groups/admins")).status_code == 201
    for userid in ("a", "b"):
        body = {"first_name": userid.upper(), "last_name": "X"}
        assert (await client.post(f"/users/{userid}", json=body)).status_code == 201
    assert (await client.put("/groups/admins", json=["a", "b"])).status_code == 200
    group = (await call(client, "GET", "/scim/v2/Groups/admins")).json()
    assert group["displayName"] == "admins"
    assert [m["value"] for m in group["members"]] == ["a", "b"]
    clash = await call(
        client, "POST", "/scim/v2/Groups", {"schemas": [GROUP], "displayName": "ADMINS"}
    )
    assert clash.status_code == 409


async def test_unknown_paths_and_methods(client: httpx.AsyncClient) -> None:
    unknown = await call(client, "GET", "/scim/v2/Nothing")
    assert unknown.status_code == 404
    assert unknown.json()["status"] == "404"
    for url in ("/scim/v2/ServiceProviderConfig", "/scim/v2/Schemas", "/scim/v2/ResourceTypes"):
        refused = await call(client, "POST", url, {})
        assert refused.status_code == 405
        assert refused.json()["status"] == "405"
    bad = await client.post("/scim/v2/Users", content=b"{not json", headers=SCIM)
    assert bad.status_code == 400
    assert bad.json()["scimType"] == "invalidSyntax"
    name = await call(
        client,
        "POST",
        "/scim/v2/Users",
        {"schemas": [USER], "userName": "J Smith", "name": {"givenName": "J", "familyName": "S"}},
    )
    assert name.status_code == 400
    assert name.json()["scimType"] == "invalidValue"
    assert "J Smith" in name.json()["detail"]
