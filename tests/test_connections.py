"""The connection layer against the real server: header size, header time, open connections.

Each attack is made as an attacker would, on raw sockets against `python -m
app serve`: a header block without end, headers trickled forever, a connection
that goes quiet after a response, more connections than a worker may hold.
These limits live below the application, in the HTTP protocol of each worker,
and never reach the database, so they run on SQLite only; the keep-alive
check, which reads and writes, runs on both databases.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import LiveServer, served_database, serving
from tests.support.sockets import LOOPBACK, Connection, get, json_head, read_response, request_head

pytestmark = pytest.mark.anyio

# Generous: the server closes within its limit plus one timer tick; a loaded
# machine may be slow to run that tick, never by this much.
CLOSE_WITHIN = 15.0
ANSWER_TIMEOUT = 10.0
HEADER_TIMEOUT = "1"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'grouped-users.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from served_database(request, tmp_path, "grouped_users_conn")


def _problem(status: int, headers: dict[str, str], body: bytes, expected: int, code: str) -> None:
    assert status == expected, body
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == expected
    assert problem["code"] == code
    assert problem["type"] == f"urn:grouped-users:problem:{code}"


async def _closed(reader: asyncio.StreamReader) -> None:
    """The server closes the connection (an end of file or a reset) within CLOSE_WITHIN."""
    with suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), CLOSE_WITHIN) == b""


def _peak_rss_kib(server: LiveServer) -> int:
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def _headers_without_end(port: int, lines: int, line_bytes: int) -> int:
    """The attack: header lines of `line_bytes` each, never the blank line; bytes sent."""
    sent = 0
    with socket.create_connection((LOOPBACK, port), timeout=CLOSE_WITHIN) as sock:
        try:
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {LOOPBACK}\r\n".encode())
            line = b"X-Pad: " + b"a" * line_bytes + b"\r\n"
            for _ in range(lines):
                sock.sendall(line)
                sent += len(line)
        except OSError:
            return sent
    return sent


async def test_a_header_block_over_the_limit_is_431(sqlite_url: str, tmp_path: Path) -> None:
    async with serving(sqlite_url, tmp_path) as server:
        reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
        try:
            # 40 KiB of headers, over the default 32 KiB, sent whole: the server reads it all.
            pad = "a" * 40_000
            writer.write(f"GET / HTTP/1.1\r\nHost: {LOOPBACK}\r\nX-Pad: {pad}\r\n\r\n".encode())
            await writer.drain()
            status, headers, body = await asyncio.wait_for(read_response(reader), ANSWER_TIMEOUT)
            _problem(status, headers, body, 431, "header_too_large")
            await _closed(reader)
        finally:
            writer.close()
        # A large block under the limit (a big cookie) is served as usual.
        async with httpx.AsyncClient(base_url=server.url, timeout=ANSWER_TIMEOUT) as client:
            response = await client.get("/healthz", headers={"Cookie": "c=" + "b" * 24_000})
            assert response.status_code == 200


async def test_headers_without_end_are_cut_off_with_bounded_memory(
    sqlite_url: str, tmp_path: Path
) -> None:
    connections, lines, line_bytes = 4, 64, 1 << 20
    async with serving(sqlite_url, tmp_path) as server:
        before = _peak_rss_kib(server)
        sent = await asyncio.gather(
            *(
                asyncio.to_thread(_headers_without_end, server.port, lines, line_bytes)
                for _ in range(connections)
            )
        )
        after = _peak_rss_kib(server)
        async with httpx.AsyncClient(base_url=server.url, timeout=ANSWER_TIMEOUT) as client:
            assert (await client.get("/healthz")).status_code == 200
    # Each was closed after the limit and what the socket buffers hold, long
    # before its 64 MiB; the worker's peak memory barely moved.
    assert max(sent) < 16 << 20, sent
    assert after - before < 64 << 10, (before, after)


async def test_a_connection_that_never_finishes_its_headers_is_closed(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = {"GROUPED_USERS_HEADER_TIMEOUT_SECONDS": HEADER_TIMEOUT}
    async with serving(sqlite_url, tmp_path, env=env) as server:
        silent_reader, silent = await asyncio.open_connection(LOOPBACK, server.port)
        reader, writer = await asyncio.open_connection(LOOPBACK, server.port)

        async def trickle() -> None:
            """A byte of header every 0.1 s: never idle, never done."""
            with suppress(ConnectionError):
                writer.write(f"GET /healthz HTTP/1.1\r\nHost: {LOOPBACK}\r\nX-Slow: ".encode())
                while True:
                    writer.write(b"a")
                    await writer.drain()
                    await asyncio.sleep(0.1)

        sending = asyncio.create_task(trickle())
        try:
            status, headers, body = await asyncio.wait_for(read_response(reader), CLOSE_WITHIN)
            _problem(status, headers, body, 408, "request_header_timeout")
            await _closed(reader)
            # Connected and silent: closed without a word, as an idle keep-alive connection.
            await _closed(silent_reader)
        finally:
            sending.cancel()
            with suppress(asyncio.CancelledError):
                await sending
            writer.close()
            silent.close()


async def test_a_connection_quiet_after_a_response_is_closed(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = {"GROUPED_USERS_HEADER_TIMEOUT_SECONDS": HEADER_TIMEOUT}
    request = request_head("GET", "/healthz")
    async with serving(sqlite_url, tmp_path, env=env) as server:
        idle_reader, idle = await asyncio.open_connection(LOOPBACK, server.port)
        reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
        try:
            for connection_reader, connection in ((idle_reader, idle), (reader, writer)):
                connection.write(request)
                await connection.drain()
                status, _, _ = await asyncio.wait_for(
                    read_response(connection_reader), ANSWER_TIMEOUT
                )
                assert status == 200
            # One byte of the next request, then nothing (this once held a connection forever).
            writer.write(b"G")
            await writer.drain()
            status, headers, body = await asyncio.wait_for(read_response(reader), CLOSE_WITHIN)
            _problem(status, headers, body, 408, "request_header_timeout")
            await _closed(reader)
            await _closed(idle_reader)
        finally:
            writer.close()
            idle.close()


async def _open(port: int, count: int) -> list[Connection]:
    return list(
        await asyncio.gather(*(asyncio.open_connection(LOOPBACK, port) for _ in range(count)))
    )


async def _healthz_on(connection: Connection) -> int:
    status, _, _ = await get(connection, "/healthz", ANSWER_TIMEOUT)
    return status


async def _refused(connection: Connection) -> None:
    reader, _ = connection
    status, headers, body = await asyncio.wait_for(read_response(reader), ANSWER_TIMEOUT)
    _problem(status, headers, body, 503, "too_many_connections")
    assert headers["retry-after"].isdigit()
    await _closed(reader)


async def test_connections_beyond_the_bound_are_refused(sqlite_url: str, tmp_path: Path) -> None:
    limit = 20
    env = {
        "GROUPED_USERS_MAX_CONNECTIONS": str(limit),
        "GROUPED_USERS_HEADER_TIMEOUT_SECONDS": "60",
    }
    async with serving(sqlite_url, tmp_path, env=env) as server:
        # A client already connected, and as many idle ones as make the bound.
        [client] = await _open(server.port, 1)
        assert await _healthz_on(client) == 200
        idle = await _open(server.port, limit - 1)
        excess = await _open(server.port, 10)
        try:
            await asyncio.gather(*(_refused(c) for c in excess))
            # The connected client is still served, again and again.
            for _ in range(3):
                assert await _healthz_on(client) == 200
        finally:
            for _, writer in idle + excess:
                writer.close()
        # Once the idle ones are gone, new connections are served again.
        deadline = time.monotonic() + CLOSE_WITHIN
        while True:
            [fresh] = await _open(server.port, 1)
            try:
                status = await _healthz_on(fresh)
            except (asyncio.IncompleteReadError, ConnectionError):
                status = 0
            finally:
                fresh[1].close()
            if status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert status == 200
        client[1].close()
        # The operator is told, once for the whole burst.
        warnings = [line for line in server.stderr_lines() if "connection limit reached" in line]
        assert len(warnings) == 1, server.log_problems()
        assert '"level": "warning"' in warnings[0]


async def test_keep_alive_and_pipelined_clients_still_work(
    database_url: str, tmp_path: Path
) -> None:
    env = {"GROUPED_USERS_HEADER_TIMEOUT_SECONDS": HEADER_TIMEOUT}
    async with serving(database_url, tmp_path, env=env) as server:
        reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
        try:
            # Requests on one connection, with pauses below the limit, for longer than it.
            body = json.dumps({"first_name": "K", "last_name": "A"}).encode()
            writer.write(json_head("POST", "/users/kept", body) + body)
            status, headers, _ = await asyncio.wait_for(read_response(reader), ANSWER_TIMEOUT)
            assert status == 201
            for _ in range(5):
                await asyncio.sleep(0.4)
                status, headers, _ = await get((reader, writer), "/users/kept", ANSWER_TIMEOUT)
                assert status == 200
                assert headers.get("connection") != "close"
            # Three requests in one write: three answers, in order.
            writer.write(
                b"".join(request_head("GET", f"/groups/{name}") for name in ("nope", "none", "nil"))
            )
            for name in ("nope", "none", "nil"):
                status, _, answer = await asyncio.wait_for(read_response(reader), ANSWER_TIMEOUT)
                assert status == 404
                assert name in json.loads(answer)["detail"]
            # Headers done, the body comes after more than the limit: the request is not cut.
            body = json.dumps({"first_name": "S", "last_name": "L"}).encode()
            writer.write(json_head("POST", "/users/slowbody", body))
            await writer.drain()
            await asyncio.sleep(2.5)
            writer.write(body)
            status, _, answer = await asyncio.wait_for(read_response(reader), ANSWER_TIMEOUT)
            assert status == 201, answer
        finally:
            writer.close()
