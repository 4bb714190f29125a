"""What Okta and Entra ID rely on beyond the replays: ETags, paging, uniqueness, shapes, audit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.repository import scim as scim_repo

pytestmark = pytest.mark.anyio

SCIM = {"Content-Type": "application/scim+json"}
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def user(userid: str, **extra: Any) -> dict[str, Any]:
    name = {"givenName": userid.title(), "familyName": "Doe"}
    return {"schemas": [USER], "userName": userid, "name": name, **extra}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


async def call(
    client: httpx.AsyncClient, method: str, url: str, body: Any = None, **headers: str
) -> httpx.Response:
    return await client.request(method, f"/scim/v2{url}", json=body, headers={**SCIM, **headers})


@pytest.fixture
async def team(client: httpx.AsyncClient) -> httpx.AsyncClient:
    for userid, extra in [("ann", {"displayName": "Ann the First"}), ("bob", {})]:
        assert (await call(client, "POST", "/Users", user(userid, **extra))).status_code == 201
    group = {"schemas": [GROUP], "displayName": "Team", "members": [{"value": "ann"}]}
    assert (await call(client, "POST", "/Groups", group)).status_code == 201
    return client


async def test_etag_and_meta_on_every_response(team: httpx.AsyncClient) -> None:
    responses = [
        await call(team, "POST", "/Users", user("cy")),
        await call(team, "GET", "/Users/cy"),
        await call(team, "PUT", "/Users/cy", user("cy", active=False)),
        await call(team, "PATCH", "/Users/cy", patch({"op": "replace", "value": {"active": True}})),
        await call(team, "GET", "/Groups/team"),
        await call(team, "PUT", "/Groups/team", {"schemas": [GROUP], "displayName": "Team"}),
        await call(team, "PATCH", "/Groups/team", patch({"op": "add", "path": "members",
                                                         "value": [{"value": "cy"}]})),
    ]  # fmt: skip
    for response in responses:
        assert response.status_code in (200, 201), response.text
        body = response.json()
        assert body["meta"]["version"] == response.headers["ETag"]
        kind = "Users" if body["meta"]["resourceType"] == "User" else "Groups"
        assert body["meta"]["location"] == f"http://test/scim/v2/{kind}/{body['id']}"
    assert responses[0].headers["Location"] == "http://test/scim/v2/Users/cy"


async def test_stale_if_match_is_412_and_changes_nothing(team: httpx.AsyncClient) -> None:
    first = await call(team, "GET", "/Users/bob")
    stale = first.headers["ETag"]
    off = patch({"op": "replace", "path": "active", "value": False})
    assert (await call(team, "PATCH", "/Users/bob", off, **{"If-Match": stale})).status_code == 200
    for method, url, body in [
        ("PATCH", "/Users/bob", patch({"op": "replace", "path": "active", "value": True})),
        ("PUT", "/Users/bob", user("bob")),
        ("DELETE", "/Users/bob", None),
    ]:
        refused = await call(team, method, url, body, **{"If-Match": stale})
        assert refused.status_code == 412, refused.text
        assert refused.headers["Content-Type"] == "application/scim+json"
        assert refused.json()["schemas"] == [ERROR]
        assert refused.json()["status"] == "412"
        assert "scimType" not in refused.json()  # RFC 7644 Table 9 names none for 412
    assert (await call(team, "GET", "/Users/bob")).json()["active"] is False
    group = await call(team, "GET", "/Groups/team")
    rename = patch({"op": "replace", "path": "displayName", "value": "Team 2"})
    wrong = await call(team, "PATCH", "/Groups/team", rename, **{"If-Match": '"9.9"'})
    assert wrong.status_code == 412
    right = await call(team, "PATCH", "/Groups/team", rename, **{"If-Match": group.headers["ETag"]})
    assert right.status_code == 200
    assert right.headers["ETag"] != group.headers["ETag"]


async def test_user_name_lookup_ignores_case_and_pages(team: httpx.AsyncClient) -> None:
    found = (await call(team, "GET", '/Users?filter=userName eq "ANN"')).json()
    assert [r["id"] for r in found["Resources"]] == ["ann"]
    page = (await call(team, "GET", "/Users?startIndex=2&count=1")).json()
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (2, 2, 1)
    assert [r["id"] for r in page["Resources"]] == ["bob"]
    counted = (await call(team, "GET", "/Users?count=0")).json()
    assert counted == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 2,
        "startIndex": 1,
        "itemsPerPage": 0,
    }


async def test_duplicates_are_409_uniqueness(team: httpx.AsyncClient) -> None:
    again = await call(team, "POST", "/Users", user("ANN"))
    assert (again.status_code, again.json()["scimType"]) == (409, "uniqueness")
    clash = await call(team, "POST", "/Groups", {"schemas": [GROUP], "displayName": "tEAM"})
    assert (clash.status_code, clash.json()["scimType"]) == (409, "uniqueness")
    assert clash.json()["status"] == "409"
    other = await call(team, "POST", "/Groups", {"schemas": [GROUP], "displayName": "Other"})
    renamed = patch({"op": "replace", "path": "displayName", "value": "TEAM"})
    taken = await call(team, "PATCH", f"/Groups/{other.json()['id']}", renamed)
    assert (taken.status_code, taken.json()["scimType"]) == (409, "uniqueness")


async def test_a_display_name_taken_between_check_and_insert_is_409(
    team: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A concurrent creator that got in after our check: the unique index decides.
    async def never_taken(*_args: Any, **_kwargs: Any) -> bool:
        return False

    monkeypatch.setattr(scim_repo, "display_key_taken", never_taken)
    clash = await call(team, "POST", "/Groups", {"schemas": [GROUP], "displayName": "TEAM"})
    assert (clash.status_code, clash.json()["scimType"]) == (409, "uniqueness")
    groups = await call(team, "GET", '/Groups?filter=displayName eq "team"')
    assert groups.json()["totalResults"] == 1


async def test_a_display_name_taken_between_check_and_update_is_409(
    team: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A concurrent renamer that got in after our check: 409, as on create.
    async def never_taken(*_args: Any, **_kwargs: Any) -> bool:
        return False

    other = await call(team, "POST", "/Groups", {"schemas": [GROUP], "displayName": "Other"})
    monkeypatch.setattr(scim_repo, "display_key_taken", never_taken)
    renamed = patch({"op": "replace", "path": "displayName", "value": "TEAM"})
    taken = await call(team, "PATCH", f"/Groups/{other.json()['id']}", renamed)
    assert (taken.status_code, taken.json()["scimType"]) == (409, "uniqueness")
    again = await call(team, "GET", f"/Groups/{other.json()['id']}")
    assert again.json()["displayName"] == "Other"


async def test_if_none_match_reads_a_list_of_tags_weak_or_strong(team: httpx.AsyncClient) -> None:
    for url in ("/Users/ann", "/Groups/team"):
        current = (await call(team, "GET", url)).headers["ETag"]
        for header in (current, f'"0.0", {current}', f"W/{current}", "*"):
            unchanged = await call(team, "GET", url, **{"If-None-Match": header})
            assert unchanged.status_code == 304, (url, header)
            assert unchanged.headers["ETag"] == current
        assert (await call(team, "GET", url, **{"If-None-Match": '"0.0"'})).status_code == 200


async def test_if_match_compares_strongly_and_star_needs_a_resource(
    team: httpx.AsyncClient,
) -> None:
    current = (await call(team, "GET", "/Users/bob")).headers["ETag"]
    off = patch({"op": "replace", "path": "active", "value": False})
    weak = await call(team, "PATCH", "/Users/bob", off, **{"If-Match": f"W/{current}"})
    assert weak.status_code == 412, weak.text
    listed = await call(team, "PATCH", "/Users/bob", off, **{"If-Match": f'"0.0", {current}'})
    assert listed.status_code == 200, listed.text
    assert (await call(team, "PATCH", "/Users/bob", off, **{"If-Match": "*"})).status_code == 200
    gone = await call(team, "PATCH", "/Users/nobody", off, **{"If-Match": "*"})
    assert gone.status_code == 404


async def test_look_alike_user_names_reach_no_one(team: httpx.AsyncClient) -> None:
    # U+212A KELVIN SIGN lower-cases to ASCII "k" in Python: the name rule
    # must see what was sent, with only A-Z folded.
    assert (await call(team, "POST", "/Users", user("kate"))).status_code == 201
    for look_alike in ("\u212aate", "\u212aATE", "k\u0430te"):
        created = await call(team, "POST", "/Users", user(look_alike))
        assert (created.status_code, created.json()["scimType"]) == (400, "invalidValue")
        found = await call(team, "GET", f'/Users?filter=userName eq "{look_alike}"')
        assert found.json()["totalResults"] == 0, look_alike
    found = await call(team, "GET", '/Users?filter=userName eq "KATE"')
    assert [r["id"] for r in found.json()["Resources"]] == ["kate"]
    group = {"schemas": [GROUP], "displayName": "\u212aate Team"}
    created = await call(team, "POST", "/Groups", group)
    assert created.status_code == 201, created.text
    assert created.json()["id"] != "kate-team"


async def test_entra_member_changes(team: httpx.AsyncClient) -> None:
    # Entra adds members as a list of {value}, and removes them naming them in value.
    add = patch({"op": "Add", "path": "members", "value": [{"value": "bob"}]})
    added = await call(team, "PATCH", "/Groups/team", add)
    assert [m["value"] for m in added.json()["members"]] == ["ann", "bob"]
    remove = patch({"op": "Remove", "path": "members", "value": [{"value": "ann"}]})
    removed = await call(team, "PATCH", "/Groups/team", remove)
    assert removed.status_code == 200, removed.text
    assert [m["value"] for m in removed.json()["members"]] == ["bob"]
    by_filter = patch({"op": "remove", "path": 'members[value eq "bob"]'})
    emptied = await call(team, "PATCH", "/Groups/team", by_filter)
    assert "members" not in emptied.json()


async def test_entra_sets_an_email_through_a_filter_no_entry_matches(
    team: httpx.AsyncClient,
) -> None:
    work = patch(
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "bob@work.example"},
        {"op": "Replace", "path": "active", "value": "False"},
    )
    patched = await call(team, "PATCH", "/Users/bob", work)
    assert patched.status_code == 200, patched.text
    assert patched.json()["emails"] == [
        {"value": "bob@work.example", "type": "work", "primary": False}
    ]
    assert patched.json()["active"] is False


async def test_members_display_on_request(team: httpx.AsyncClient) -> None:
    add = patch({"op": "add", "path": "members", "value": [{"value": "bob"}]})
    assert (await call(team, "PATCH", "/Groups/team", add)).status_code == 200
    plain = (await call(team, "GET", "/Groups/team")).json()
    assert plain["members"] == [
        {"value": "ann", "$ref": "http://test/scim/v2/Users/ann", "type": "User"},
        {"value": "bob", "$ref": "http://test/scim/v2/Users/bob", "type": "User"},
    ]
    asked = await call(team, "GET", "/Groups/team?attributes=members.display,members.value")
    # displayName when the user has one, else "first last".
    assert asked.json()["members"] == [
        {"value": "ann", "display": "Ann the First"},
        {"value": "bob", "display": "Bob Doe"},
    ]
    listed = await call(team, "GET", "/Groups?attributes=displayName,members.display")
    assert listed.json()["Resources"][0]["members"] == [
        {"display": "Ann the First"},
        {"display": "Bob Doe"},
    ]
    schema = (await call(team, "GET", f"/Schemas/{GROUP}")).json()
    members = next(a for a in schema["attributes"] if a["name"] == "members")
    display = next(s for s in members["subAttributes"] if s["name"] == "display")
    assert (display["mutability"], display["returned"]) == ("readOnly", "request")


async def test_delete_then_404(team: httpx.AsyncClient) -> None:
    for url in ("/Users/bob", "/Groups/team"):
        assert (await call(team, "DELETE", url)).status_code == 204
        gone = await call(team, "GET", url)
        assert (gone.status_code, gone.json()["status"]) == (404, "404")


async def test_scim_changes_reach_the_core_api_and_the_audit_log(team: httpx.AsyncClient) -> None:
    rename = patch({"op": "replace", "path": "name.familyName", "value": "Smith"})
    assert (await call(team, "PATCH", "/Users/bob", rename)).status_code == 200
    core = await team.get("/users/bob")
    assert core.json() == {"userid": "bob", "first_name": "Bob", "last_name": "Smith",
                           "groups": []}  # fmt: skip
    assert (await team.put("/groups/team", json=["bob"])).status_code == 200
    members = (await call(team, "GET", "/Groups/team")).json()["members"]
    assert [m["value"] for m in members] == ["bob"]
    assert (await call(team, "GET", "/Users/bob")).json()["groups"][0]["value"] == "team"

    audit = (await team.get("/audit?limit=100")).json()["items"]
    actions = [(entry["action"], entry["resource"]) for entry in reversed(audit)]
    assert actions[:4] == [
        ("scim.user.create", "users/ann"),
        ("scim.user.create", "users/bob"),
        ("scim.group.create", "groups/team"),
        ("scim.user.patch", "users/bob"),
    ]
    patched = next(entry for entry in audit if entry["action"] == "scim.user.patch")
    assert patched["before"]["last_name"] == "Doe"
    assert patched["after"]["last_name"] == "Smith"


async def test_discovery_is_truthful(client: httpx.AsyncClient) -> None:
    config = (await call(client, "GET", "/ServiceProviderConfig")).json()
    assert config["patch"] == {"supported": True}
    assert config["filter"] == {"supported": True, "maxResults": 1000}
    assert config["etag"] == {"supported": True}
    assert config["sort"] == {"supported": False}
    assert config["bulk"]["supported"] is False
    assert config["changePassword"] == {"supported": False}
    assert [s["type"] for s in config["authenticationSchemes"]] == ["oauthbearertoken"]
    types = (await call(client, "GET", "/ResourceTypes")).json()
    assert [(r["id"], r["endpoint"]) for r in types["Resources"]] == [
        ("User", "/Users"),
        ("Group", "/Groups"),
    ]
    schemas = (await call(client, "GET", "/Schemas")).json()
    assert {s["id"] for s in schemas["Resources"]} == {USER, GROUP}
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for url in ("/ServiceProviderConfig", "/ResourceTypes/User", f"/Schemas/{USER}"):
            refused = await call(client, method, url, {})
            assert refused.status_code == 405, (method, url)
            assert refused.headers["Content-Type"] == "application/scim+json"
            assert refused.json()["status"] == "405"
