"""Malformed and hostile requests: each is a SCIM error (never a 500) and changes nothing."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from app.api import create_app
from app.db import Database
from app.settings import Settings

pytestmark = pytest.mark.anyio

SCIM = {"Content-Type": "application/scim+json"}
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
NAME = {"givenName": "New", "familyName": "Person"}


def user(**extra: Any) -> dict[str, Any]:
    return {"schemas": [USER], "userName": "new", "name": NAME, **extra}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


# (method, url, body: JSON value, or bytes sent as they are; status; scimType or None)
# fmt: off
CASES: list[tuple[str, str, Any, int, str | None]] = [
    # Bodies that are not JSON, or not an object, or too deep or too big.
    ("POST", "/Users", b"{not json", 400, "invalidSyntax"),
    ("POST", "/Users", b"\xff\xfe\x00", 400, "invalidSyntax"),
    ("POST", "/Users", b"", 400, "invalidSyntax"),
    ("POST", "/Users", nested(100_000), 400, "invalidSyntax"),
    ("POST", "/Users", b"[" * 100_000, 400, "invalidSyntax"),
    ("PATCH", "/Users/ann", nested(100_000), 400, "invalidSyntax"),
    ("POST", "/Users", b'{"userName": ' + b"1" * 5000 + b"}", 400, "invalidSyntax"),
    ("POST", "/Users", [1, 2], 400, "invalidValue"),
    ("POST", "/Users", None, 400, "invalidValue"),
    ("POST", "/Users", b"x" * (9 * 1024 * 1024), 413, None),
    # Wrong types and unknown attributes.
    ("POST", "/Users", user(userName=123), 400, "invalidValue"),
    ("POST", "/Users", user(emails={"value": "a@b.example"}), 400, "invalidValue"),
    ("POST", "/Users", user(emails=[{"value": 7}]), 400, "invalidValue"),
    ("POST", "/Users", user(active="maybe"), 400, "invalidValue"),
    ("POST", "/Users", user(name="New Person"), 400, "invalidValue"),
    ("POST", "/Users", user(frobnicate=1), 400, "invalidValue"),
    ("POST", "/Users", user(name={"givenName": "New"}), 400, "invalidValue"),
    ("POST", "/Users", user(userName="ünï code"), 400, "invalidValue"),
    ("POST", "/Users", user(userName="x" * 65), 400, "invalidValue"),
    ("POST", "/Users", user(displayName="x" * 10_000), 400, "invalidValue"),
    ("POST", "/Users", user(displayName="tab\there"), 400, "invalidValue"),
    ("POST", "/Users", b'{"userName": "new", "name": {"givenName": "\\ud800",'
     b' "familyName": "P"}}', 400, "invalidValue"),
    ("POST", "/Users", user(userName="ANN"), 409, "uniqueness"),
    ("POST", "/Groups", {"schemas": [GROUP], "displayName": "g", "members": "ann"}, 400,
     "invalidValue"),
    ("POST", "/Groups", {"schemas": [GROUP], "displayName": "g", "members": ["ann"]}, 400,
     "invalidValue"),
    ("POST", "/Groups", {"schemas": [GROUP], "displayName": "g",
     "members": [{"value": "\ud800"}]}, 400, "invalidValue"),
    ("POST", "/Groups", {"schemas": [GROUP], "displayName": "g",
     "members": [{"value": "nobody"}]}, 400, "invalidValue"),
    ("POST", "/Groups", {"schemas": [GROUP], "displayName": 5}, 400, "invalidValue"),
    ("POST", "/Groups", {"schemas": [GROUP], "displayName": ""}, 400, "invalidValue"),
    ("POST", "/Groups", {"schemas": [GROUP], "displayName": "x" * 257}, 400, "invalidValue"),
    ("POST", "/Groups", {"schemas": [GROUP], "displayName": "TEAM"}, 409, "uniqueness"),
    ("PUT", "/Users/ann", user(userName="ann", active="maybe"), 400, "invalidValue"),
    ("PUT", "/Users/ann", user(userName="someone"), 400, "mutability"),
    ("PUT", "/Groups/team", {"schemas": [GROUP], "displayName": "Team", "members": {}}, 400,
     "invalidValue"),
    # PatchOps that are not PatchOps, or cannot apply.
    # RFC 7644 Table 9: "a required value was missing" is invalidValue.
    ("PATCH", "/Users/ann", {"schemas": [PATCH]}, 400, "invalidValue"),
    ("PATCH", "/Users/ann", {"schemas": [PATCH], "Operations": []}, 400, "invalidValue"),
    ("PATCH", "/Users/ann", {"schemas": [PATCH], "Operations": "x"}, 400, "invalidSyntax"),
    ("PATCH", "/Users/ann", patch({"op": "frobnicate", "path": "active", "value": False}), 400,
     "invalidValue"),
    ("PATCH", "/Users/ann", patch({"op": "replace", "path": "frob", "value": 1}), 400,
     "invalidPath"),
    ("PATCH", "/Users/ann", patch({"op": "replace", "path": 'emails[type eq ', "value": "x"}),
     400, "invalidPath"),
    ("PATCH", "/Users/ann", patch({"op": "replace", "path": "active", "value": "maybe"}), 400,
     "invalidValue"),
    ("PATCH", "/Users/ann", patch({"op": "replace", "path": "active", "value": [True]}), 400,
     "invalidValue"),
    ("PATCH", "/Users/ann", patch({"op": "replace", "path": "name.givenName", "value": 5}), 400,
     "invalidValue"),
    ("PATCH", "/Users/ann", patch({"op": "replace", "value": "active"}), 400, "invalidValue"),
    ("PATCH", "/Users/ann", patch({"op": "replace", "value": {"frob": 1}}), 400, "invalidValue"),
    ("PATCH", "/Users/ann", patch({"op": "remove"}), 400, "noTarget"),
    ("PATCH", "/Users/ann", patch({"op": "remove", "path": "name.givenName"}), 400,
     "invalidValue"),
    ("PATCH", "/Users/ann", patch({"op": "replace", "path": "userName", "value": "bob"}), 400,
     "mutability"),
    ("PATCH", "/Users/ann", patch({"op": "replace", "path": "id", "value": "bob"}), 400,
     "mutability"),
    ("PATCH", "/Users/ann", patch({"op": "add", "path": "groups", "value": [{"value": "x"}]}),
     400, "mutability"),
    # A failing operation after a good one: nothing is applied.
    ("PATCH", "/Users/ann", patch({"op": "replace", "path": "active", "value": False},
     {"op": "replace", "path": "displayName", "value": {"a": 1}}), 400,
     "invalidValue"),
    ("PATCH", "/Groups/team", patch({"op": "add", "path": "members", "value": "ann"}), 400,
     "invalidValue"),
    ("PATCH", "/Groups/team", patch({"op": "remove", "path": 'members[value eq "ann"]'},
     {"op": "add", "path": "members", "value": [{"value": "nobody"}]}), 400,
     "invalidValue"),
    ("PATCH", "/Groups/team", patch({"op": "remove", "path": "displayName"}), 400, "mutability"),
    ("PATCH", "/Users/nobody", patch({"op": "replace", "path": "active", "value": False}), 404,
     None),
    # Paging, attributes and filters that cannot be read.
    ("GET", "/Users?startIndex=abc", None, 400, "invalidValue"),
    ("GET", "/Users?count=1.5", None, 400, "invalidValue"),
    ("GET", "/Users?count=ten", None, 400, "invalidValue"),
    ("GET", '/Users?attributes=""', None, 400, "invalidValue"),
    ("GET", "/Users?attributes=userName&excludedAttributes=name", None, 400, "invalidValue"),
    ("GET", "/Users?filter=(((", None, 400, "invalidFilter"),
    ("GET", "/Users?filter=" + quote("not (" * 300 + "userName pr" + ")" * 300), None, 400,
     "invalidFilter"),
    ("GET", "/Users?filter=" + quote(" or ".join(['userName eq "a"'] * 300)), None, 400,
     "invalidFilter"),
    ("GET", "/Users?filter=" + quote('userName eq "\\ud800"'), None, 400, "invalidFilter"),
    ("GET", "/Users?filter=" + quote('meta.created gt "99999-01-01T00:00:00Z"'), None, 400,
     "invalidFilter"),
    ("GET", "/Groups?filter=" + quote('members[value eq "ann"'), None, 400, "invalidFilter"),
    ("POST", "/Users/.search", {"schemas": [SEARCH], "filter": "((("}, 400, "invalidFilter"),
    ("POST", "/Users/.search", {"schemas": [SEARCH], "filter": 5}, 400, "invalidFilter"),
    ("POST", "/Users/.search", {"schemas": [SEARCH], "startIndex": "x"}, 400, "invalidValue"),
    ("POST", "/.search", {"schemas": [SEARCH], "filter": "frob eq 1"}, 400, "invalidFilter"),
    # Routes.
    ("GET", "/Nothing", None, 404, None),
    ("DELETE", "/Users", None, 405, None),
    ("PUT", "/ServiceProviderConfig", {}, 405, None),
    ("GET", "/Users/%F0%9F%98%80", None, 404, None),
]
# fmt: on


async def snapshot(client: httpx.AsyncClient) -> list[Any]:
    users = (await client.get("/scim/v2/Users", headers=SCIM)).json()
    groups = (await client.get("/scim/v2/Groups", headers=SCIM)).json()
    audit = (await client.get("/audit?limit=1000")).json()["items"]
    return [users, groups, len(audit)]


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> httpx.AsyncClient:
    made = await client.post("/scim/v2/Users", json=user(userName="ann"), headers=SCIM)
    assert made.status_code == 201, made.text
    group = {"schemas": [GROUP], "displayName": "Team", "members": [{"value": "ann"}]}
    made = await client.post("/scim/v2/Groups", json=group, headers=SCIM)
    assert made.status_code == 201, made.text
    return client


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "scim_type"),
    CASES,
    ids=[f"{c[0]} {c[1][:60]} {str(c[2])[:50]}" for c in CASES],
)
async def test_refused_as_a_scim_error_changing_nothing(
    seeded: httpx.AsyncClient,
    method: str,
    url: str,
    body: Any,
    status: int,
    scim_type: str | None,
) -> None:
    before = await snapshot(seeded)
    # json.dumps escapes what is not ASCII: a lone surrogate reaches the server as \ud800.
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    if method in ("GET", "DELETE"):
        content = b""
    response = await seeded.request(method, f"/scim/v2{url}", headers=SCIM, content=content)
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"] == "application/scim+json"
    error = response.json()
    assert error["schemas"] == [ERROR]
    assert error["status"] == str(status)
    assert error.get("scimType") == scim_type, error
    assert error["detail"]
    assert "pydantic" not in error["detail"]
    assert "\n" not in error["detail"]
    assert await snapshot(seeded) == before


# RFC 7644 section 3.4.2.4: a startIndex below 1 is read as 1, a count below 0 as 0.
PAGES = [
    ("startIndex=0", 1, 1, 1),
    ("startIndex=-5", 1, 1, 1),
    ("startIndex=99999999999999999999999", 99999999999999999999999, 0, 1),
    ("startIndex=9223372036854775808&count=5", 9223372036854775808, 0, 1),
    ("count=-1", 1, 0, 1),
    ("count=0", 1, 0, 1),
    ("count=99999999999999999999999", 1, 1, 1),
    ("attributes=frob", 1, 1, 1),
    ("excludedAttributes=frob", 1, 1, 1),
    ("filter=" + quote('userName eq "日本"'), 1, 0, 0),
    ("filter=" + quote('displayName eq "\\u0000"'), 1, 0, 0),
]


@pytest.mark.parametrize(("query", "start", "items", "total"), PAGES, ids=[p[0] for p in PAGES])
async def test_out_of_range_paging_is_read_as_the_rfc_says(
    seeded: httpx.AsyncClient, query: str, start: int, items: int, total: int
) -> None:
    response = await seeded.get(f"/scim/v2/Users?{query}", headers=SCIM)
    assert response.status_code == 200, response.text
    page = response.json()
    assert (page["startIndex"], page["itemsPerPage"], page["totalResults"]) == (
        start,
        items,
        total,
    )
    assert len(page.get("Resources", [])) == items


FOUR_ANNS = [{"value": "ann"}] * 4
RENAME = {"op": "add", "path": "displayName", "value": "T"}
OFF = {"op": "replace", "path": "active", "value": False}
EMAILS = [{"value": f"n{i}@example.com"} for i in range(4)]
# (method, url, body, where the list of 4 is): each one over a limit of 3.
TOO_LONG: list[tuple[str, str, dict[str, Any], str]] = [
    ("PATCH", "/Groups/team", patch(*[RENAME] * 4), "Operations"),
    (
        "PATCH",
        "/Groups/team",
        patch({"op": "add", "path": "members", "value": FOUR_ANNS}),
        "Operations[0].value",
    ),
    (
        "PUT",
        "/Groups/team",
        {"schemas": [GROUP], "displayName": "T", "members": FOUR_ANNS},
        "members",
    ),
    ("POST", "/Groups", {"schemas": [GROUP], "displayName": "N", "members": FOUR_ANNS}, "members"),
    ("POST", "/Users", user(emails=EMAILS), "emails"),
    ("PATCH", "/Users/ann", patch(*[OFF] * 4), "Operations"),
    ("POST", "/.search", {"schemas": [SEARCH], "attributes": ["id"] * 4}, "attributes"),
]


@pytest.mark.parametrize(("method", "url", "body", "field"), TOO_LONG)
async def test_every_list_in_a_body_is_capped_before_any_work(
    settings: Settings,
    database: Database,
    method: str,
    url: str,
    body: dict[str, Any],
    field: str,
) -> None:
    app = create_app(settings.model_copy(update={"max_list_length": 3}), database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        ann = await client.post("/scim/v2/Users", json=user(userName="ann"), headers=SCIM)
        assert ann.status_code == 201, ann.text
        team = {"schemas": [GROUP], "displayName": "Team", "members": [{"value": "ann"}]}
        assert (await client.post("/scim/v2/Groups", json=team, headers=SCIM)).status_code == 201
        before = [(await client.get(f"/scim/v2/{kind}")).json() for kind in ("Users", "Groups")]
        refused = await client.request(method, f"/scim/v2{url}", json=body, headers=SCIM)
        assert refused.status_code == 400, refused.text
        assert refused.json()["scimType"] == "invalidValue"
        assert field in refused.json()["detail"]
        after = [(await client.get(f"/scim/v2/{kind}")).json() for kind in ("Users", "Groups")]
        assert after == before
