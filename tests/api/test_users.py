"""Contract of /users/{userid}: the name rules, the four user rows and their semantics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.helpers import assert_problem, create_group, create_user, members_of

# The contract holds with auth disabled and with a writer token alike.
pytestmark = [pytest.mark.anyio, pytest.mark.with_writer_token]

JSON_HEADERS = {"content-type": "application/json"}
JOE: dict[str, Any] = {"first_name": "Joe", "last_name": "Smith"}

# Names that break the rule: upper case, spaces, bad first character, too long, other characters.
BAD_NAMES = [
    "JSmith",
    "jSmith",
    "j smith",
    "-joe",
    ".joe",
    "_joe",
    "@joe",
    "j" * 65,
    "joe+x",
    "joe!",
    "joe~x",
    "zoë",
    "jo,e",
]
GOOD_NAMES = ["a", "0", "0x", "j" * 64, "a.b_c-d@e", "joe@example.com", "9lives"]
RULE_WORDS = ["1-64 characters", "a-z", "0-9", "starting with a letter or digit"]


async def fetch_user(client: httpx.AsyncClient, userid: str) -> dict[str, Any] | None:
    """The stored record, or None when GET answers 404 user_not_found."""
    response = await client.get(f"/users/{userid}")
    if response.status_code == 404:
        assert_problem(response, 404, "user_not_found")
        return None
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


def error_fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


# GET


async def test_get_returns_the_record_with_sorted_groups(client: httpx.AsyncClient) -> None:
    for name in ("users", "admins", "ops"):
        await create_group(client, name)
    await create_user(client, "jsmith", groups=["users", "ops", "admins"])
    response = await client.get("/users/jsmith")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "first_name": "Jsmith",
        "last_name": "Tester",
        "userid": "jsmith",
        "groups": ["admins", "ops", "users"],
    }


async def test_get_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/users/ghost"), 404, "user_not_found")
    assert "ghost" in body["detail"]


async def test_lookup_is_case_sensitive(client: httpx.AsyncClient) -> None:
    await create_user(client, "jsmith")
    assert_problem(await client.get("/users/JSMITH"), 404, "user_not_found")


# POST


@pytest.mark.parametrize(
    ("extra", "groups"),
    [
        pytest.param({}, [], id="groups-absent"),
        pytest.param({"groups": []}, [], id="groups-empty"),
        pytest.param({"userid": "jsmith"}, [], id="userid-equals-path"),
        pytest.param({"groups": ["users", "admins"]}, ["admins", "users"], id="groups-sorted"),
        pytest.param({"userid": "jsmith", "groups": ["admins"]}, ["admins"], id="full-record"),
    ],
)
async def test_post_creates_the_record(
    client: httpx.AsyncClient, extra: dict[str, Any], groups: list[str]
) -> None:
    await create_group(client, "admins")
    await create_group(client, "users")
    response = await client.post("/users/jsmith", json=JOE | extra)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/users/jsmith"
    assert response.headers["content-type"] == "application/json"
    expected = JOE | {"userid": "jsmith", "groups": groups}
    assert response.json() == expected
    assert await fetch_user(client, "jsmith") == expected


@pytest.mark.parametrize("userid", GOOD_NAMES)
async def test_post_accepts_every_valid_name(client: httpx.AsyncClient, userid: str) -> None:
    response = await client.post(f"/users/{userid}", json=JOE)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/users/{userid}"
    assert (await fetch_user(client, userid)) == JOE | {"userid": userid, "groups": []}


async def test_post_existing_user_is_409_and_changes_nothing(client: httpx.AsyncClient) -> None:
    await create_group(client, "admins")
    await create_group(client, "users")
    await create_user(client, "jsmith", groups=["admins"])
    before = await fetch_user(client, "jsmith")
    response = await client.post(
        "/users/jsmith", json={"first_name": "Other", "last_name": "Person", "groups": ["users"]}
    )
    body = assert_problem(response, 409, "user_exists")
    assert "jsmith" in body["detail"]
    assert await fetch_user(client, "jsmith") == before
    assert await members_of(client, "users") == []


@pytest.mark.parametrize("userid", BAD_NAMES)
async def test_post_with_a_name_breaking_the_rule_is_422(
    client: httpx.AsyncClient, userid: str
) -> None:
    body = assert_problem(await client.post(f"/users/{userid}", json=JOE), 422, "invalid_name")
    for words in RULE_WORDS:
        assert words in body["detail"]
    assert error_fields(body) == ["userid"]
    assert await fetch_user(client, userid) is None


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("userid", BAD_NAMES)
async def test_lookup_with_a_name_breaking_the_rule_is_404(
    client: httpx.AsyncClient, method: str, userid: str
) -> None:
    body = JOE if method == "PUT" else None
    response = await client.request(method, f"/users/{userid}", json=body)
    assert_problem(response, 404, "user_not_found")


# Invalid records: the same bodies are refused by POST (nothing stored) and PUT (nothing changed).

INVALID_RECORDS = [
    pytest.param({}, "first_name", id="empty-object"),
    pytest.param({"last_name": "Smith"}, "first_name", id="first-name-missing"),
    pytest.param({"first_name": "Joe"}, "last_name", id="last-name-missing"),
    pytest.param(JOE | {"email": "j@example.com"}, "email", id="unknown-field"),
    pytest.param(JOE | {"first_name": 1}, "first_name", id="first-name-number"),
    pytest.param(JOE | {"first_name": None}, "first_name", id="first-name-null"),
    pytest.param(JOE | {"last_name": ["Smith"]}, "last_name", id="last-name-list"),
    pytest.param(JOE | {"last_name": True}, "last_name", id="last-name-bool"),
    pytest.param(JOE | {"first_name": ""}, "first_name", id="first-name-empty"),
    pytest.param(JOE | {"last_name": ""}, "last_name", id="last-name-empty"),
    pytest.param(JOE | {"first_name": "x" * 257}, "first_name", id="first-name-257"),
    pytest.param(JOE | {"last_name": "山" * 257}, "last_name", id="last-name-257-cjk"),
    pytest.param(JOE | {"first_name": "Jo\x00e"}, "first_name", id="control-nul"),
    pytest.param(JOE | {"first_name": "Jo\ne"}, "first_name", id="control-newline"),
    pytest.param(JOE | {"last_name": "Sm\tith"}, "last_name", id="control-tab"),
    pytest.param(JOE | {"last_name": "Smith\x7f"}, "last_name", id="control-del"),
    pytest.param(JOE | {"last_name": "\x9fSmith"}, "last_name", id="control-c1"),
    pytest.param(JOE | {"groups": "admins"}, "groups", id="groups-string"),
    pytest.param(JOE | {"groups": None}, "groups", id="groups-null"),
    pytest.param(JOE | {"groups": {"admins": True}}, "groups", id="groups-object"),
    pytest.param(JOE | {"groups": [1]}, "groups[0]", id="groups-number"),
    pytest.param(JOE | {"groups": ["admins", None]}, "groups[1]", id="groups-null-entry"),
    pytest.param(JOE | {"groups": ["admins", "admins"]}, "groups[1]", id="groups-duplicate"),
    pytest.param(JOE | {"groups": ["Admins"]}, "groups[0]", id="groups-bad-name"),
    pytest.param(JOE | {"groups": ["admins", ""]}, "groups[1]", id="groups-empty-name"),
    pytest.param(JOE | {"userid": "other"}, "userid", id="userid-differs"),
    pytest.param(JOE | {"userid": "JSMITH"}, "userid", id="userid-differs-in-case"),
    pytest.param(JOE | {"userid": None}, "userid", id="userid-null"),
    pytest.param(JOE | {"userid": 5}, "userid", id="userid-number"),
    pytest.param(["Joe", "Smith"], "body", id="body-list"),
    pytest.param("Joe Smith", "body", id="body-string"),
    pytest.param(42, "body", id="body-number"),
    pytest.param(None, "body", id="body-null"),
]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(("record", "field"), INVALID_RECORDS)
async def test_invalid_record_is_422_and_stores_nothing(
    client: httpx.AsyncClient, method: str, record: Any, field: str
) -> None:
    await create_group(client, "admins")
    if method == "PUT":
        await create_user(client, "jsmith", groups=["admins"])
    before = await fetch_user(client, "jsmith")
    response = await client.request(method, "/users/jsmith", json=record)
    body = assert_problem(response, 422, "invalid_record")
    assert body["errors"], body
    assert any(name == field or name.startswith(f"{field}[") for name in error_fields(body)), body
    assert await fetch_user(client, "jsmith") == before
    assert await fetch_user(client, "other") is None
    assert await members_of(client, "admins") == (["jsmith"] if before else [])


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_duplicate_group_is_422_naming_it(client: httpx.AsyncClient, method: str) -> None:
    await create_group(client, "admins")
    await create_group(client, "users")
    if method == "PUT":
        await create_user(client, "jsmith", groups=["users"])
    before = await fetch_user(client, "jsmith")
    record = JOE | {"groups": ["users", "admins", "admins"]}
    response = await client.request(method, "/users/jsmith", json=record)
    body = assert_problem(response, 422, "invalid_record")
    assert body["errors"] == [
        {"field": "groups[2]", "message": "'admins' is listed more than once"}
    ]
    assert "'admins'" in body["detail"]
    assert await fetch_user(client, "jsmith") == before


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_missing_body_is_422(client: httpx.AsyncClient, method: str) -> None:
    if method == "PUT":
        await create_user(client, "jsmith")
    before = await fetch_user(client, "jsmith")
    assert_problem(await client.request(method, "/users/jsmith"), 422, "invalid_record")
    assert await fetch_user(client, "jsmith") == before


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(
    "content", [b"{bad", b'{"first_name": "Joe", "last_name": "Smith"', b"[1,]", b"{'a': 1}"]
)
async def test_malformed_json_is_400_and_stores_nothing(
    client: httpx.AsyncClient, method: str, content: bytes
) -> None:
    if method == "PUT":
        await create_user(client, "jsmith")
    before = await fetch_user(client, "jsmith")
    response = await client.request(method, "/users/jsmith", content=content, headers=JSON_HEADERS)
    assert_problem(response, 400, "malformed_json")
    assert await fetch_user(client, "jsmith") == before


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_unknown_groups_are_422_listing_them_and_store_nothing(
    client: httpx.AsyncClient, method: str
) -> None:
    await create_group(client, "admins")
    await create_group(client, "users")
    if method == "PUT":
        await create_user(client, "jsmith", groups=["users"])
    before = await fetch_user(client, "jsmith")
    record = JOE | {"groups": ["admins", "staff", "ops"]}
    response = await client.request(method, "/users/jsmith", json=record)
    body = assert_problem(response, 422, "unknown_groups")
    assert "'staff'" in body["detail"]
    assert "'ops'" in body["detail"]
    assert "'admins'" not in body["detail"]
    assert sorted(error_fields(body)) == ["groups[1]", "groups[2]"]
    assert await fetch_user(client, "jsmith") == before
    assert await members_of(client, "admins") == []
    assert await members_of(client, "users") == (["jsmith"] if before else [])
    # Unknown groups are not created on the way.
    for name in ("staff", "ops"):
        assert_problem(await client.delete(f"/groups/{name}"), 404, "group_not_found")


# Person names: 1-256 characters, any script, no control characters.

PERSON_NAMES = [
    "Zoë",
    "山田",
    "😀",
    "Ελένη",
    "محمد",
    "O'Brien-Smith Jr.",
    "e\u0301",
    "x",
    "x" * 256,
    "山" * 256,
    "😀" * 256,
]


@pytest.mark.parametrize("name", PERSON_NAMES)
async def test_person_names_in_any_script_round_trip(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post("/users/jsmith", json={"first_name": name, "last_name": "Smith"})
    assert response.status_code == 201, response.text
    assert response.json()["first_name"] == name
    assert (await fetch_user(client, "jsmith") or {})["first_name"] == name
    response = await client.put("/users/jsmith", json={"first_name": "Joe", "last_name": name})
    assert response.status_code == 200, response.text
    expected = {"first_name": "Joe", "last_name": name, "userid": "jsmith", "groups": []}
    assert response.json() == expected
    assert await fetch_user(client, "jsmith") == expected


# PUT


async def test_put_replaces_the_whole_record(client: httpx.AsyncClient) -> None:
    for name in ("admins", "users", "ops"):
        await create_group(client, name)
    await create_user(client, "jsmith", groups=["admins", "users"])
    record = {"first_name": "Joseph", "last_name": "Smyth", "groups": ["ops", "admins"]}
    response = await client.put("/users/jsmith", json=record)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    expected = record | {"userid": "jsmith", "groups": ["admins", "ops"]}
    assert response.json() == expected
    assert await fetch_user(client, "jsmith") == expected
    assert await members_of(client, "users") == []
    assert await members_of(client, "ops") == ["jsmith"]


@pytest.mark.parametrize("extra", [{}, {"userid": "jsmith"}], ids=["without-userid", "with-userid"])
async def test_put_without_groups_empties_them(
    client: httpx.AsyncClient, extra: dict[str, Any]
) -> None:
    await create_group(client, "admins")
    await create_user(client, "jsmith", groups=["admins"])
    response = await client.put("/users/jsmith", json=JOE | extra)
    assert response.status_code == 200, response.text
    expected = JOE | {"userid": "jsmith", "groups": []}
    assert response.json() == expected
    assert await fetch_user(client, "jsmith") == expected
    assert await members_of(client, "admins") == []


async def test_put_cannot_change_the_userid(client: httpx.AsyncClient) -> None:
    await create_user(client, "jsmith")
    before = await fetch_user(client, "jsmith")
    response = await client.put("/users/jsmith", json=JOE | {"userid": "jane"})
    body = assert_problem(response, 422, "invalid_record")
    assert "jane" in body["detail"]
    assert error_fields(body) == ["userid"]
    assert await fetch_user(client, "jsmith") == before
    assert await fetch_user(client, "jane") is None


async def test_put_unknown_user_is_404_and_creates_nothing(client: httpx.AsyncClient) -> None:
    await create_group(client, "admins")
    response = await client.put("/users/ghost", json=JOE | {"groups": ["admins"]})
    assert_problem(response, 404, "user_not_found")
    assert await fetch_user(client, "ghost") is None
    assert await members_of(client, "admins") == []


# DELETE


async def test_delete_removes_the_user(client: httpx.AsyncClient) -> None:
    await create_group(client, "admins")
    await create_user(client, "jsmith", groups=["admins"])
    await create_user(client, "other")
    response = await client.delete("/users/jsmith")
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await fetch_user(client, "jsmith") is None
    assert await members_of(client, "admins") == []
    assert await fetch_user(client, "other") is not None
    assert_problem(await client.delete("/users/jsmith"), 404, "user_not_found")
    # The userid is free again.
    response = await client.post("/users/jsmith", json=JOE)
    assert response.status_code == 201, response.text
    assert response.json()["groups"] == []


async def test_delete_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    await create_user(client, "other")
    assert_problem(await client.delete("/users/ghost"), 404, "user_not_found")
    assert await fetch_user(client, "other") is not None
