"""Every error is a problem, 500s hide their cause, and requests carry an id."""

from __future__ import annotations

import logging
import re
import uuid
from typing import NoReturn

import httpx
import pytest
from sqlalchemy.exc import ProgrammingError

from app.reads import users as user_reads
from app.service import groups as group_service
from app.service import users as user_service
from tests.support.helpers import PROBLEM_JSON, assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio

RECORD = {"first_name": "Joe", "last_name": "Smith"}
# What a generated request id looks like: short, and safe in a header and a log line.
GENERATED_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
CONTRACT_METHODS = {"DELETE", "GET", "POST", "PUT"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("DELETE", "/nope/deeper"),
        ("GET", "/users/joe/extra"),
        ("PUT", "/groups/admins/x/y"),
        ("GET", "/v1/users/joe"),
    ],
)
async def test_unknown_route_is_a_404_problem(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    body = assert_problem(response, 404, "not_found")
    assert path in body["detail"]
    assert response.headers.get("x-request-id")


@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", "/groups/admins"), ("TRACE", "/groups/admins"), ("TRACE", "/users/joe")],
)
async def test_wrong_method_is_a_405_problem_with_allow(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    body = assert_problem(response, 405, "method_not_allowed")
    assert method in body["detail"]
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed >= CONTRACT_METHODS
    assert method not in allowed
    assert response.headers.get("x-request-id")


async def boom(*args: object, **kwargs: object) -> NoReturn:
    raise RuntimeError("boom secret")


async def sql_failure(*args: object, **kwargs: object) -> NoReturn:
    statement = "SELECT password_hash FROM secret_table WHERE userid = $1"
    raise ProgrammingError(statement, ("joe",), Exception('relation "secret_table" is absent'))


# (module, function to break, request that reaches it)
FAILURES = [
    pytest.param(user_service, "get_user", "GET", "/users/joe", None, boom, id="GET user"),
    pytest.param(user_service, "create_user", "POST", "/users/joe", RECORD, boom, id="POST user"),
    pytest.param(
        group_service, "replace_members", "PUT", "/groups/admins", ["joe"], boom, id="PUT group"
    ),
    pytest.param(
        group_service, "delete_group", "DELETE", "/groups/admins", None, boom, id="DELETE"
    ),
    pytest.param(user_reads, "get_record", "GET", "/users/joe", None, sql_failure, id="SQL"),
]
LEAKS = ["boom", "secret", "RuntimeError", "ProgrammingError", "Traceback", 'File "', ".py"]
LEAKS += ["SELECT", "password", "sqlalchemy", "asyncpg", "sqlite"]


@pytest.mark.parametrize("sent_id", [None, "req-500-check"])
@pytest.mark.parametrize(("module", "function", "method", "url", "body", "failure"), FAILURES)
async def test_unexpected_error_is_a_500_problem_that_hides_its_cause(
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    module: object,
    function: str,
    method: str,
    url: str,
    body: object,
    failure: object,
    sent_id: str | None,
) -> None:
    await create_group(client, "admins")
    await create_user(client, "joe", ["admins"])
    monkeypatch.setattr(module, function, failure)
    headers = {"x-request-id": sent_id} if sent_id else {}
    with caplog.at_level(logging.ERROR):
        response = await client.request(method, url, json=body, headers=headers)

    problem = assert_problem(response, 500, "internal_error")
    assert set(problem) == {"type", "title", "status", "detail", "code"}
    for leak in LEAKS:
        assert leak.lower() not in response.text.lower(), response.text
    request_id = response.headers["x-request-id"]
    assert request_id == sent_id if sent_id else GENERATED_ID.fullmatch(request_id)
    # The log has what the client must not see, and the id that ties the two together.
    assert request_id in caplog.text
    assert "Traceback" in caplog.text
    expected = "boom secret" if failure is boom else "secret_table"
    assert expected in caplog.text
    assert any(record.exc_info and request_id in record.getMessage() for record in caplog.records)


async def test_after_a_500_the_service_still_answers(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await create_user(client, "joe")
    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR):
        patch.setattr(user_service, "get_user", boom)
        assert (await client.get("/users/joe")).status_code == 500
    response = await client.get("/users/joe")
    assert response.status_code == 200, response.text


SANE_IDS = ["abc-123", str(uuid.uuid4()), "trace:1.2_x", "A" * 128]
INSANE_IDS = [
    pytest.param(b"a" * 500, id="500 characters"),
    pytest.param(b"has spaces", id="spaces"),
    pytest.param(b"<script>alert(1)</script>", id="markup"),
    pytest.param(b"a;b=c", id="separators"),
    pytest.param(b"", id="empty"),
    pytest.param("caf\xe9".encode("latin-1"), id="not ASCII"),
]
# A success, a problem from the service, and problems from routing.
EXCHANGES = [
    pytest.param("GET", "/users/joe", 200, id="200"),
    pytest.param("GET", "/users/nobody", 404, id="404"),
    pytest.param("GET", "/nope", 404, id="no route"),
    pytest.param("PATCH", "/groups/admins", 405, id="405"),
]


@pytest.mark.parametrize(("method", "path", "status"), EXCHANGES)
@pytest.mark.parametrize("sent", SANE_IDS)
async def test_sane_request_id_is_echoed(
    client: httpx.AsyncClient, sent: str, method: str, path: str, status: int
) -> None:
    await create_user(client, "joe")
    response = await client.request(method, path, headers={"x-request-id": sent})
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"] == sent
    if status >= 400:
        assert response.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize(("method", "path", "status"), EXCHANGES)
async def test_request_id_is_generated_when_absent(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    await create_user(client, "joe")
    first = await client.request(method, path)
    second = await client.request(method, path)
    assert first.status_code == second.status_code == status
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(GENERATED_ID.fullmatch(request_id) for request_id in ids), ids
    assert ids[0] != ids[1]


@pytest.mark.parametrize(("method", "path", "status"), EXCHANGES)
@pytest.mark.parametrize("sent", INSANE_IDS)
async def test_insane_request_id_is_replaced(
    client: httpx.AsyncClient, sent: bytes, method: str, path: str, status: int
) -> None:
    await create_user(client, "joe")
    response = await client.request(method, path, headers={b"x-request-id": sent})
    assert response.status_code == status, response.text
    request_id = response.headers["x-request-id"]
    assert request_id.encode("latin-1") != sent
    assert GENERATED_ID.fullmatch(request_id), request_id
