"""Versions as strong ETags; If-Match and If-None-Match, on both databases."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import httpx
import pytest

from tests.support.helpers import assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio

# RFC 9110 section 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; strong: no W/.
STRONG_ETAG = re.compile(r'"[\x21\x23-\x7e]*"')
RECORD: dict[str, Any] = {"first_name": "Joe", "last_name": "Smith"}


class Call(NamedTuple):
    method: str
    path: str
    body: Any = None
    status: int = 200


async def send(
    client: httpx.AsyncClient, call: Call, headers: dict[str, str] | None = None
) -> httpx.Response:
    """The request; a PATCH body goes as merge-patch, any other as JSON."""
    all_headers = dict(headers or {})
    content = None
    if call.body is not None:
        content = json.dumps(call.body)
        patch = call.method == "PATCH"
        all_headers["content-type"] = (
            "application/merge-patch+json" if patch else "application/json"
        )
    return await client.request(call.method, call.path, content=content, headers=all_headers)


async def done(client: httpx.AsyncClient, call: Call, headers: dict[str, str] | None = None) -> str:
    """Send the call, expect its success status; the ETag it answered with, if any."""
    response = await send(client, call, headers)
    assert response.status_code == call.status, f"{call} {headers}: {response.text}"
    tag: str = response.headers.get("etag", "")
    return tag


def strong_etag(response: httpx.Response) -> str:
    tag: str | None = response.headers.get("etag")
    where = f"{response.request.method} {response.request.url.path}"
    assert tag is not None, f"{where} -> {response.status_code} has no ETag"
    assert STRONG_ETAG.fullmatch(tag), f"{where}: {tag!r} is not a strong entity tag"
    return tag


async def fetch(client: httpx.AsyncClient, path: str) -> tuple[Any, str]:
    """GET the resource: its body and its ETag."""
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json(), strong_etag(response)


async def etag_of(client: httpx.AsyncClient, path: str) -> str:
    return (await fetch(client, path))[1]


@pytest.fixture
async def directory(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Users a, b, c, d; groups g = [a, b], h = [a, c], k = [d]."""
    for userid in ("a", "b", "c", "d"):
        await create_user(client, userid)
    await create_group(client, "g", ["a", "b"])
    await create_group(client, "h", ["a", "c"])
    await create_group(client, "k", ["d"])
    return client


# --- Every response that shows a resource carries its strong ETag ---------------------------


async def test_user_responses_carry_the_etag_that_get_shows(client: httpx.AsyncClient) -> None:
    await create_group(client, "g")
    writes = [
        Call("POST", "/users/joe", RECORD, 201),
        Call("PUT", "/users/joe", {**RECORD, "groups": ["g"]}),
        Call("PATCH", "/users/joe", {"last_name": "Smith-Jones"}),
        Call("PATCH", "/users/joe", {"groups": None}),
        Call("PUT", "/users/joe", {**RECORD, "userid": "joe"}),
    ]
    seen: list[str] = []
    for call in writes:
        response = await send(client, call)
        assert response.status_code == call.status, response.text
        tag = strong_etag(response)
        # The tag of a write's answer is the tag of what it stored; each write bumps it.
        assert await etag_of(client, "/users/joe") == tag, call
        assert tag not in seen, call
        seen.append(tag)


async def test_group_responses_carry_the_etag_that_get_shows(client: httpx.AsyncClient) -> None:
    for userid in ("a", "b"):
        await create_user(client, userid)
    response = await client.post("/groups/g")
    assert response.status_code == 201, response.text
    seen = [strong_etag(response)]
    for members in (["a"], ["a", "b"], ["b"]):
        response = await client.put("/groups/g", json=members)
        assert response.status_code == 200, response.text
        tag = strong_etag(response)
        assert await etag_of(client, "/groups/g") == tag, members
        assert tag not in seen, members
        seen.append(tag)


# --- Every change bumps the tag of each resource whose representation changes -------------

U = "/users/"
G = "/groups/"
CHANGES = {
    "put user names": (Call("PUT", "/users/b", {**RECORD, "groups": ["g"]}), [U + "b"], [G + "g"]),
    "patch user name": (Call("PATCH", "/users/b", {"first_name": "Bee"}), [U + "b"], [G + "g"]),
    "put group": (
        Call("PUT", "/groups/g", ["b", "c"]),
        [G + "g", U + "a", U + "c"],
        [G + "h", G + "k", U + "d"],
    ),
    "put member": (Call("PUT", "/groups/g/members/c", status=204), [G + "g", U + "c"], [G + "h"]),
    "delete member": (
        Call("DELETE", "/groups/g/members/b", status=204),
        [G + "g", U + "b"],
        [G + "h", U + "a"],
    ),
    "put user groups": (
        Call("PUT", "/users/c", {**RECORD, "groups": ["g"]}),
        [U + "c", G + "g", G + "h"],
        [G + "k", U + "a", U + "b"],
    ),
    "patch user groups": (
        Call("PATCH", "/users/c", {"groups": ["g", "k"]}),
        [U + "c", G + "g", G + "h", G + "k"],
        [U + "a", U + "d"],
    ),
    "post user in groups": (
        Call("POST", "/users/e", {**RECORD, "groups": ["g"]}, 201),
        [G + "g"],
        [G + "h", U + "a"],
    ),
    "delete user": (Call("DELETE", "/users/a", status=204), [G + "g", G + "h"], [G + "k", U + "b"]),
    "delete group": (
        Call("DELETE", "/groups/h", status=204),
        [U + "a", U + "c"],
        [G + "g", U + "b", U + "d"],
    ),
    "idempotent put member": (
        Call("PUT", "/groups/g/members/a", status=204),
        [],
        [G + "g", U + "a", U + "b"],
    ),
}


@pytest.mark.parametrize(("call", "bumped", "kept"), CHANGES.values(), ids=CHANGES.keys())
async def test_a_change_bumps_the_etags_of_what_it_changes(
    directory: httpx.AsyncClient, call: Call, bumped: list[str], kept: list[str]
) -> None:
    before = {path: await etag_of(directory, path) for path in bumped + kept}
    await done(directory, call)
    after = {path: await etag_of(directory, path) for path in bumped + kept}
    assert [p for p in bumped if after[p] == before[p]] == [], "not bumped"
    assert [p for p in kept if after[p] != before[p]] == [], "bumped though unchanged"


# --- If-None-Match on GET (weak comparison) --------------------------------------------------

Header = Callable[[str, str], str]  # (current tag, stale tag) -> header value
IF_NONE_MATCH: dict[str, tuple[Header, int]] = {
    "current": (lambda cur, old: cur, 304),
    "stale": (lambda cur, old: old, 200),
    "star": (lambda cur, old: "*", 304),
    "list with current": (lambda cur, old: f'{old}, "no.such", {cur}', 304),
    "list of stale": (lambda cur, old: f'{old}, "no.such"', 200),
    "weak current": (lambda cur, old: f"W/{cur}", 304),
}
# A resource and a change to it that keeps it readable.
RESOURCES = {
    "user": Call("PATCH", "/users/a", {"last_name": "Changed"}),
    "group": Call("PUT", "/groups/g", ["a", "c"]),
}


@pytest.mark.parametrize("change", RESOURCES.values(), ids=RESOURCES.keys())
@pytest.mark.parametrize(("header", "status"), IF_NONE_MATCH.values(), ids=IF_NONE_MATCH.keys())
async def test_if_none_match_on_get(
    directory: httpx.AsyncClient, change: Call, header: Header, status: int
) -> None:
    stale = await etag_of(directory, change.path)
    await done(directory, change)
    body, current = await fetch(directory, change.path)

    response = await directory.get(change.path, headers={"If-None-Match": header(current, stale)})
    assert response.status_code == status, response.text
    assert strong_etag(response) == current
    if status == 304:
        assert response.content == b""
    else:
        assert response.json() == body


async def test_if_none_match_on_an_unknown_resource_is_404(directory: httpx.AsyncClient) -> None:
    for path, code in (("/users/zz", "user_not_found"), ("/groups/zz", "group_not_found")):
        response = await directory.get(path, headers={"If-None-Match": "*"})
        assert_problem(response, 404, code)


# --- If-Match on PUT / PATCH / DELETE (strong comparison) ------------------------------------

WRITES = {
    "put user": Call("PUT", "/users/a", {**RECORD, "groups": ["h"]}),
    "patch user": Call("PATCH", "/users/a", {"last_name": "Patched"}),
    "delete user": Call("DELETE", "/users/a", status=204),
    "put group": Call("PUT", "/groups/g", ["c", "d"]),
    "delete group": Call("DELETE", "/groups/g", status=204),
}
# Changes that leave the resource of a write as it was, with a new tag.
REWRITE = {
    "/users/a": [
        Call("PATCH", "/users/a", {"first_name": "Z"}),
        Call("PATCH", "/users/a", {"first_name": "A"}),
    ],
    "/groups/g": [
        Call("PUT", "/groups/g/members/c", status=204),
        Call("DELETE", "/groups/g/members/c", status=204),
    ],
}
IF_MATCH: dict[str, tuple[Header, bool]] = {
    "current": (lambda cur, old: cur, True),
    "star": (lambda cur, old: "*", True),
    "list with current": (lambda cur, old: f'"no.such", {cur}', True),
    "stale": (lambda cur, old: old, False),
    "list of stale": (lambda cur, old: f'{old}, "no.such"', False),
    "weak current": (lambda cur, old: f"W/{cur}", False),
    "garbage": (lambda cur, old: "garbage", False),
    "unquoted current": (lambda cur, old: cur.strip('"'), False),
}


def resource_of(call: Call) -> str:
    return "/users/a" if call.path.startswith("/users/") else "/groups/g"


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
@pytest.mark.parametrize(("header", "applies"), IF_MATCH.values(), ids=IF_MATCH.keys())
async def test_if_match_on_a_write(
    directory: httpx.AsyncClient, write: Call, header: Header, applies: bool
) -> None:
    path = resource_of(write)
    stale = await etag_of(directory, path)
    for call in REWRITE[path]:
        await done(directory, call)
    body, current = await fetch(directory, path)
    assert current != stale

    response = await send(directory, write, {"If-Match": header(current, stale)})
    if not applies:
        assert_problem(response, 412, "precondition_failed")
        # Nothing changed: the resource, its tag, and the other side of its memberships.
        assert await fetch(directory, path) == (body, current)
        assert (await fetch(directory, "/users/b"))[0]["groups"] == ["g"]
        return
    assert response.status_code == write.status, response.text
    if write.method == "DELETE":
        assert (await directory.get(path)).status_code == 404
        return
    tag = strong_etag(response)
    assert tag != current
    assert await fetch(directory, path) == (response.json(), tag)


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
@pytest.mark.parametrize("tag", ['"1.1"', "*"])
async def test_if_match_on_an_unknown_resource_is_404(
    directory: httpx.AsyncClient, write: Call, tag: str
) -> None:
    kind = "user" if write.path.startswith("/users/") else "group"
    unknown = write._replace(path=f"/{kind}s/zz")
    response = await send(directory, unknown, {"If-Match": tag})
    assert_problem(response, 404, f"{kind}_not_found")


async def test_writers_holding_one_etag_get_one_success(directory: httpx.AsyncClient) -> None:
    tag = await etag_of(directory, "/users/a")
    first = Call("PATCH", "/users/a", {"last_name": "First"})
    assert await done(directory, first, {"If-Match": tag})
    second = await send(directory, first._replace(body={"last_name": "Second"}), {"If-Match": tag})
    assert_problem(second, 412, "precondition_failed")
    assert (await fetch(directory, "/users/a"))[0]["last_name"] == "First"


# --- A re-created resource is a new one: the old tags do not match it ------------------------

RECREATE = {
    "user": (
        "/users/a",
        Call("POST", "/users/a", RECORD, 201),
        Call("PUT", "/users/a", {**RECORD, "last_name": "Changed"}),
    ),
    "group": (
        "/groups/g",
        Call("POST", "/groups/g", status=201),
        Call("PUT", "/groups/g", ["a"]),
    ),
}


@pytest.mark.parametrize(("path", "create", "write"), RECREATE.values(), ids=RECREATE.keys())
async def test_a_recreated_resource_does_not_match_old_etags(
    client: httpx.AsyncClient, path: str, create: Call, write: Call
) -> None:
    await create_user(client, "a")
    await create_group(client, "g")
    old = [await done(client, write)]
    for _ in range(2):
        await done(client, Call("DELETE", path, status=204))
        old.append(await done(client, create))
        old.append(await done(client, write))
    # Each life of the resource has tags of its own.
    assert len(set(old)) == len(old), old
    current = old[-1]
    for tag in old[:-1]:
        response = await client.get(path, headers={"If-None-Match": tag})
        assert response.status_code == 200, tag
        assert strong_etag(response) == current
        response = await send(client, write, {"If-Match": tag})
        assert_problem(response, 412, "precondition_failed")
    assert await etag_of(client, path) == current


# --- A write that changes nothing keeps the tag ------------------------------------------------

NO_OPS: dict[str, Callable[[dict[str, Any]], Call]] = {
    "same PUT": lambda record: Call("PUT", "/users/a", record),
    "empty PATCH": lambda record: Call("PATCH", "/users/a", {}),
    "same-value PATCH": lambda record: Call(
        "PATCH", "/users/a", {"first_name": record["first_name"]}
    ),
}


@pytest.mark.parametrize("write", NO_OPS.values(), ids=NO_OPS.keys())
async def test_a_write_that_changes_nothing_keeps_the_etag(
    client: httpx.AsyncClient, write: Callable[[dict[str, Any]], Call]
) -> None:
    await create_user(client, "a")
    before, tag = await fetch(client, "/users/a")
    response = await send(client, write(before), {"If-Match": tag})
    assert response.status_code == 200, response.text
    assert response.json() == before
    assert strong_etag(response) == tag
    # Clients holding the tag are not sent a needless 412.
    assert await done(client, Call("PATCH", "/users/a", {"last_name": "Next"}), {"If-Match": tag})
