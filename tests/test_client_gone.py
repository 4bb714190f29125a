"""A client that hangs up in the middle of its body: one info line, no error, nothing changed.

Against the real `python -m app serve` on SQLite and PostgreSQL: the
disconnect is the server's to notice, and its log is what an operator reads.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.live_server import (
    LiveServer,
    fresh_postgres_async,
    postgres_server,
    serving,
    snapshot,
)
from tests.support.sockets import LOOPBACK, json_head

pytestmark = pytest.mark.anyio

RECORD = json.dumps({"first_name": "Half", "last_name": "Sent", "groups": []}).encode()
SCIM_USER = json.dumps(
    {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "halfsent",
        "name": {"givenName": "Half", "familyName": "Sent"},
    }
).encode()
# (method, path, body, request id): each sends its headers and half its body, then hangs up.
UPLOADS = [
    ("POST", "/users/halfsent", RECORD, "gone-core"),
    ("PUT", "/groups/halfsent", b'["a", "b", "c"]', "gone-members"),
    ("POST", "/scim/v2/Users", SCIM_USER, "gone-scim"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _hang_up_mid_body(
    server: LiveServer, method: str, path: str, body: bytes, rid: str
) -> None:
    head = json_head(method, path, body, {"X-Request-ID": rid})
    _, writer = await asyncio.open_connection(LOOPBACK, server.port)
    writer.write(head + body[: len(body) // 2])
    await writer.drain()
    # Long enough for the app to be waiting for the rest of the body.
    await asyncio.sleep(0.3)
    writer.close()
    await writer.wait_closed()


def _log_of(server: LiveServer) -> list[dict[str, Any]]:
    lines = []
    for line in server.stderr_lines():
        if line.startswith("{"):
            lines.append(json.loads(line))
        elif not line.startswith("grouped-users: authentication is DISABLED"):
            # A traceback or any other text: never part of a request's log.
            lines.append({"level": "text", "msg": line})
    return lines


async def _until_logged(server: LiveServer, request_ids: set[str]) -> None:
    for _ in range(200):
        if request_ids <= {line.get("request_id") for line in _log_of(server)}:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"the requests were never logged:\n{server.log_tail()}")


async def _check(database_url: str, directory: Path) -> None:
    async with serving(database_url, directory) as server:
        for method, path, body, rid in UPLOADS:
            await _hang_up_mid_body(server, method, path, body, rid)
        await _until_logged(server, {rid for *_, rid in UPLOADS})
        log = _log_of(server)
    problems = [line for line in log if line["level"] not in ("info", "debug")]
    assert problems == [], "\n".join(json.dumps(line) for line in problems)
    for method, path, _, rid in UPLOADS:
        lines = [line for line in log if line.get("request_id") == rid]
        assert len(lines) == 1, lines
        (line,) = lines
        assert (line["level"], line["method"], line["path"]) == ("info", method, path)
        # nginx's "client closed request": no answer could be sent.
        assert line["status"] == 499, line
    stored = await snapshot(database_url)
    assert "halfsent" not in stored.users
    assert "halfsent" not in stored.groups


async def test_a_client_gone_mid_body_is_one_info_line(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        await _check(f"sqlite:///{tmp_path / 'gu.db'}", tmp_path)
        return
    async with fresh_postgres_async(postgres_server()) as url:
        await _check(url, tmp_path)
