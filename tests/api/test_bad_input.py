"""Bad input is answered with the right 4xx problem, and nothing is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.api import create_app
from app.db import Database
from app.settings import Settings
from tests.support.helpers import assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio

NEW_USER = "newbie"
NEW_GROUP = "newgroup"
RECORD: dict[str, Any] = {"first_name": "Joe", "last_name": "Smith"}
DROP = object()  # rec(field=DROP) leaves the field out
LIMIT = 100  # bytes, for the app built by small_client


def dumps(value: object) -> bytes:
    return json.dumps(value).encode()


def rec(**fields: object) -> bytes:
    return dumps({k: v for k, v in {**RECORD, **fields}.items() if v is not DROP})


@dataclass(frozen=True)
class Target:
    """A request that takes a body: `good` is one it accepts, `stored` what GET url then shows."""

    method: str
    url: str
    good: bytes
    success: int
    invalid_code: str  # the code of a 422 from schema validation
    stored: object  # None: the target creates a group, which then exists


NEW_RECORD = {**RECORD, "userid": NEW_USER, "groups": []}
CHANGE = rec(first_name="Joseph", groups=["staff"])
CHANGED = {**RECORD, "first_name": "Joseph", "userid": "joe", "groups": ["staff"]}
POST_USER = Target("POST", f"/users/{NEW_USER}", rec(), 201, "invalid_record", NEW_RECORD)
PUT_USER = Target("PUT", "/users/joe", CHANGE, 200, "invalid_record", CHANGED)
PUT_GROUP = Target("PUT", "/groups/admins", dumps(["ann"]), 200, "invalid_member_list", ["ann"])
POST_GROUP = Target("POST", f"/groups/{NEW_GROUP}", b"[]", 201, "non_empty_body", None)
ALL = (POST_USER, PUT_USER, PUT_GROUP, POST_GROUP)
TARGETS = [pytest.param(t, id=f"{t.method} {t.url}") for t in ALL]


@dataclass(frozen=True)
class Bad:
    body: bytes
    fields: tuple[str, ...] = ()  # among the problem's errors[].field
    code: str | None = None  # None: the target's invalid_code
    status: int = 422
    mentions: tuple[str, ...] = ()  # in the problem's detail


def bad(body: bytes, *fields: str, code: str | None = None, mentions: tuple[str, ...] = ()) -> Bad:
    return Bad(body, fields, code, mentions=mentions)


def malformed(body: bytes) -> Bad:
    return Bad(body, code="malformed_json", status=400)


# Names that break the name rule, as they appear inside a JSON body.
BAD_BODY_NAMES = {
    "upper case": "Admins",
    "slash": "a/b",
    "encoded slash": "a%2Fb",
    "space": "a b",
    "unicode": "ädmins",
    "65 characters": "a" * 65,
    "empty": "",
    "leading dot": ".admins",
    "NUL": "ad\x00mins",
}
RECORD_CASES = {
    "array": bad(b"[]", "body"),
    "array of records": bad(dumps([RECORD]), "body"),
    "string": bad(b'"joe"', "body"),
    "number": bad(b"42", "body"),
    "boolean": bad(b"true", "body"),
    "null": bad(b"null", "body"),
    "empty body": bad(b"", "body"),
    "null first_name": bad(rec(first_name=None), "first_name"),
    "null last_name": bad(rec(last_name=None), "last_name"),
    "null groups": bad(rec(groups=None), "groups"),
    "null userid": bad(rec(userid=None), "userid"),
    "number first_name": bad(rec(first_name=42), "first_name"),
    "boolean last_name": bad(rec(last_name=True), "last_name"),
    "list first_name": bad(rec(first_name=["Joe"]), "first_name"),
    "object last_name": bad(rec(last_name={"x": 1}), "last_name"),
    "string groups": bad(rec(groups="admins"), "groups"),
    "object groups": bad(rec(groups={"admins": True}), "groups"),
    "number in groups": bad(rec(groups=["admins", 7]), "groups[1]"),
    "null in groups": bad(rec(groups=[None]), "groups[0]"),
    "list in groups": bad(rec(groups=[["admins"]]), "groups[0]"),
    "number userid": bad(rec(userid=7), "userid"),
    "unknown field": bad(rec(email="joe@example.com"), "email", mentions=("email",)),
    "wrong-case field": bad(rec(First_name="Joe"), "First_name"),
    "missing first_name": bad(rec(first_name=DROP), "first_name"),
    "missing last_name": bad(rec(last_name=DROP), "last_name"),
    "empty object": bad(b"{}", "first_name", "last_name"),
    "userid mismatch": bad(rec(userid="someone"), "userid", mentions=("'someone'",)),
    "invalid userid": bad(rec(userid="Someone"), "userid"),
    "duplicate group": bad(rec(groups=["admins", "admins"]), "groups[1]", mentions=("'admins'",)),
    "duplicate later": bad(
        rec(groups=["admins", "staff", "admins"]), "groups[2]", mentions=("'admins'",)
    ),
    **{
        f"group name {k}": bad(rec(groups=["admins", v]), "groups[1]")
        for k, v in BAD_BODY_NAMES.items()
    },
    "unknown groups": bad(
        rec(groups=["admins", "nope", "zzz"]),
        "groups[1]",
        "groups[2]",
        code="unknown_groups",
        mentions=("'nope'", "'zzz'"),
    ),
    "empty first_name": bad(rec(first_name=""), "first_name"),
    "257-character last_name": bad(rec(last_name="x" * 257), "last_name"),
    "NUL in first_name": bad(rec(first_name="Jo\x00e"), "first_name"),
    "newline in last_name": bad(rec(last_name="Smi\nth"), "last_name"),
    "DEL in first_name": bad(rec(first_name="Joe\x7f"), "first_name"),
    "lone surrogate": bad(b'{"first_name":"\\ud800","last_name":"x"}', "first_name"),
    "lone low surrogate": bad(b'{"first_name":"x","last_name":"a\\udfffb"}', "last_name"),
}
MEMBER_CASES = {
    "object": bad(dumps({"members": ["joe"]}), "body"),
    "string": bad(b'"joe"', "body"),
    "number": bad(b"42", "body"),
    "null": bad(b"null", "body"),
    "empty body": bad(b"", "body"),
    "null member": bad(b"[null]", "members[0]"),
    "number member": bad(dumps(["joe", 7]), "members[1]"),
    "list member": bad(dumps([["joe"]]), "members[0]"),
    "object member": bad(dumps([{"userid": "joe"}]), "members[0]"),
    "duplicate": bad(dumps(["joe", "joe"]), "members[1]", mentions=("'joe'",)),
    "duplicate later": bad(dumps(["joe", "ann", "joe"]), "members[2]", mentions=("'joe'",)),
    **{f"member name {k}": bad(dumps(["ann", v]), "members[1]") for k, v in BAD_BODY_NAMES.items()},
    "lone surrogate": bad(b'["\\ud800"]', "members[0]"),
    "unknown users": bad(
        dumps(["ann", "nobody", "zed"]),
        "members[1]",
        "members[2]",
        code="unknown_users",
        mentions=("'nobody'", "'zed'"),
    ),
}
# POST /groups/{name} takes no body or [], and any other body is a 422.
NEW_GROUP_CASES = {
    "member list": bad(dumps(["joe"]), "body"),
    "empty object": bad(b"{}", "body"),
    "object": bad(dumps({"members": []}), "body"),
    "string": bad(b'""', "body"),
    "number": bad(b"0", "body"),
    "false": bad(b"false", "body"),
    "list of null": bad(b"[null]", "body"),
    "nested empty list": bad(b"[[]]", "body"),
    "null": bad(b"null", "body"),
}
MALFORMED_CASES = {
    "truncated": malformed(b'{"first_name": "Joe",'),
    "single quotes": malformed(b"{'first_name': 'Joe'}"),
    "trailing comma": malformed(b'["joe",]'),
    "bare word": malformed(b"joe"),
    "two documents": malformed(b"[] []"),
    # RFC 8259: JSON exchanged between systems is UTF-8.
    "invalid UTF-8": malformed(b'{"first_name":"\xff\xfe","last_name":"x"}'),
    "invalid UTF-8 in list": malformed(b'["\xc3\x28"]'),
}
BAD_BODIES = [
    pytest.param(target, case, id=f"{target.method} {target.url}: {case_id}")
    for target, table in [
        (POST_USER, RECORD_CASES),
        (PUT_USER, RECORD_CASES),
        (PUT_GROUP, MEMBER_CASES),
        (POST_GROUP, NEW_GROUP_CASES),
        *[(target, MALFORMED_CASES) for target in ALL],
    ]
    for case_id, case in table.items()
]

Snapshot = dict[str, tuple[int, Any]]


async def snapshot(client: httpx.AsyncClient) -> Snapshot:
    urls = ("/users/joe", "/users/ann", f"/users/{NEW_USER}", "/groups/admins", "/groups/staff")
    return {url: ((r := await client.get(url)).status_code, r.json()) for url in urls}


async def seed(client: httpx.AsyncClient) -> Snapshot:
    """Groups admins (members: joe) and staff (none), users joe and ann."""
    await create_group(client, "admins")
    await create_group(client, "staff")
    await create_user(client, "joe", ["admins"])
    await create_user(client, "ann")
    return await snapshot(client)


async def assert_nothing_stored(client: httpx.AsyncClient, before: Snapshot) -> None:
    assert await snapshot(client) == before
    assert_problem(await client.put(f"/groups/{NEW_GROUP}", json=[]), 404, "group_not_found")


def error_fields(body: dict[str, Any]) -> list[str]:
    """The `errors` of a validation problem are [{field, message}], none of them blank."""
    errors = body.get("errors")
    assert isinstance(errors, list), body
    assert errors, body
    for error in errors:
        assert set(error) == {"field", "message"}, body
        assert all(isinstance(text, str) and text for text in error.values()), body
    return [error["field"] for error in errors]


def assert_rejected(response: httpx.Response, bad: Bad, code: str = "") -> dict[str, Any]:
    body = assert_problem(response, bad.status, bad.code or code)
    assert response.headers.get("x-request-id")
    if bad.status == 422:
        fields = error_fields(body)
        for field in bad.fields:
            assert field in fields, body
    for text in bad.mentions:
        assert text in body["detail"], body
    return body


async def send(
    client: httpx.AsyncClient,
    target: Target,
    content: bytes | AsyncIterator[bytes],
    content_type: str | None = "application/json",
) -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return await client.request(target.method, target.url, content=content, headers=headers)


async def assert_applied(client: httpx.AsyncClient, target: Target) -> None:
    if target.stored is None:
        assert_problem(await client.post(target.url), 409, "group_exists")
        return
    response = await client.get(target.url)
    assert response.status_code == 200, response.text
    assert response.json() == target.stored


@pytest.mark.parametrize(("target", "bad"), BAD_BODIES)
async def test_bad_body_is_rejected_and_nothing_stored(
    client: httpx.AsyncClient, target: Target, bad: Bad
) -> None:
    before = await seed(client)
    assert_rejected(await send(client, target, bad.body), bad, target.invalid_code)
    await assert_nothing_stored(client, before)


DEEP = [
    pytest.param(b"[" * 100_000, id="unclosed lists"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="lists"),
    pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="objects"),
    pytest.param(
        b'{"first_name":' + b"[" * 100_000 + b"]" * 100_000 + b',"last_name":"x"}', id="field"
    ),
]


@pytest.mark.parametrize("body", DEEP)
@pytest.mark.parametrize("target", TARGETS)
async def test_deeply_nested_json_is_a_client_error(
    client: httpx.AsyncClient, target: Target, body: bytes
) -> None:
    before = await seed(client)
    response = await send(client, target, body)
    assert response.status_code in (400, 422), response.text
    assert_problem(response, response.status_code, response.json()["code"])
    await assert_nothing_stored(client, before)


# (path segment, whether it reaches the /{name} routes at all)
BAD_PATH_NAMES = [
    pytest.param("Joe", True, id="upper case"),
    pytest.param("a%20b", True, id="space"),
    pytest.param("j%C3%B6e", True, id="unicode"),
    pytest.param("a" * 65, True, id="65 characters"),
    pytest.param("-joe", True, id="leading dash"),
    pytest.param("jo%00e", True, id="NUL"),
    pytest.param("a%2Fb", False, id="encoded slash"),
    pytest.param("a/b", False, id="slash"),
    pytest.param("", False, id="empty"),
]
# resource -> (the field a bad name is reported in, a body it accepts, its 404 code)
RESOURCES = {
    "users": ("userid", rec(), "user_not_found"),
    "groups": ("name", b"[]", "group_not_found"),
}


@pytest.mark.parametrize(("name", "routed"), BAD_PATH_NAMES)
@pytest.mark.parametrize("resource", RESOURCES)
async def test_create_with_bad_name_in_path(
    client: httpx.AsyncClient, resource: str, name: str, routed: bool
) -> None:
    field, good, _ = RESOURCES[resource]
    before = await seed(client)
    response = await client.post(f"/{resource}/{name}", content=good)
    if routed:
        body = assert_rejected(response, bad(good, field, code="invalid_name"))
        assert "a-z" in body["detail"], body  # it says the rule
        assert "64" in body["detail"], body
    else:
        assert_problem(response, 404, "not_found")
    await assert_nothing_stored(client, before)


@pytest.mark.parametrize(("name", "routed"), BAD_PATH_NAMES)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("resource", RESOURCES)
async def test_lookup_with_bad_name_in_path_is_404(
    client: httpx.AsyncClient, resource: str, method: str, name: str, routed: bool
) -> None:
    _, good, code = RESOURCES[resource]
    before = await seed(client)
    content = good if method == "PUT" else None
    response = await client.request(method, f"/{resource}/{name}", content=content)
    assert_problem(response, 404, code if routed else "not_found")
    await assert_nothing_stored(client, before)


async def test_longest_names_are_accepted(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"/groups/{'g' * 64}")).status_code == 201
    response = await client.post(f"/users/{'u' * 64}", json={**RECORD, "groups": ["g" * 64]})
    assert response.status_code == 201, response.text


UNSUPPORTED = [
    "text/plain",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
]
JSON_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "application/merge-patch+json",
    "application/scim+json",
]


@pytest.mark.parametrize("content_type", UNSUPPORTED)
@pytest.mark.parametrize("target", TARGETS)
async def test_body_that_is_not_json_is_415(
    client: httpx.AsyncClient, target: Target, content_type: str
) -> None:
    before = await seed(client)
    response = await send(client, target, target.good, content_type)
    media_type = content_type.partition(";")[0]
    assert_rejected(response, Bad(target.good, (), "unsupported_media_type", 415, (media_type,)))
    await assert_nothing_stored(client, before)


@pytest.mark.parametrize("content_type", JSON_TYPES)
@pytest.mark.parametrize("target", TARGETS)
async def test_json_media_types_and_none_are_parsed_as_json(
    client: httpx.AsyncClient, target: Target, content_type: str | None
) -> None:
    await seed(client)
    response = await send(client, target, target.good, content_type)
    assert response.request.headers.get("content-type") == content_type
    assert response.status_code == target.success, response.text
    await assert_applied(client, target)


def pad(body: bytes, size: int) -> bytes:
    """The same JSON, grown to `size` bytes with trailing whitespace."""
    assert len(body) <= size
    return body + b" " * (size - len(body))


async def chunks(body: bytes, size: int = 16) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.fixture
async def small_client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a body limit of LIMIT bytes, over the same database as `client`."""
    limited = settings.model_copy(update={"max_body_bytes": LIMIT})
    transport = httpx.ASGITransport(
        app=create_app(limited, database=database), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


def content_of(body: bytes, chunked: bool) -> bytes | AsyncIterator[bytes]:
    return chunks(body, max(16, len(body) // 64)) if chunked else body


CHUNKED = [pytest.param(False, id="content-length"), pytest.param(True, id="chunked")]


@pytest.mark.parametrize("chunked", CHUNKED)
@pytest.mark.parametrize("target", TARGETS)
async def test_body_over_the_limit_is_413(
    client: httpx.AsyncClient, small_client: httpx.AsyncClient, target: Target, chunked: bool
) -> None:
    before = await seed(client)
    body = pad(target.good, LIMIT + 1)
    response = await send(small_client, target, content_of(body, chunked))
    assert ("content-length" in response.request.headers) is not chunked
    assert_rejected(response, Bad(body, (), "body_too_large", 413, (str(LIMIT),)))
    await assert_nothing_stored(client, before)


@pytest.mark.parametrize("chunked", CHUNKED)
@pytest.mark.parametrize("target", TARGETS)
async def test_body_at_the_limit_is_accepted(
    client: httpx.AsyncClient, small_client: httpx.AsyncClient, target: Target, chunked: bool
) -> None:
    await seed(client)
    response = await send(small_client, target, content_of(pad(target.good, LIMIT), chunked))
    assert response.status_code == target.success, response.text
    await assert_applied(client, target)


@pytest.mark.parametrize("chunked", CHUNKED)
async def test_default_limit_is_8_mib(client: httpx.AsyncClient, chunked: bool) -> None:
    before = await seed(client)
    body = pad(POST_USER.good, 8 * 1024 * 1024 + 1)
    response = await send(client, POST_USER, content_of(body, chunked))
    assert_rejected(response, Bad(body, (), "body_too_large", 413, (str(8 * 1024 * 1024),)))
    await assert_nothing_stored(client, before)
