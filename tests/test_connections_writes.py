"""What the HTTP protocol of a worker writes to a connection, write by write.

A response's head and body leave in one write (app.connections.HeadWithBody),
except where the head must not wait: HEAD, and a client waiting for
`100 Continue`. The protocol runs here on a transport that records its
writes, fed the request's bytes as a socket would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from app.connections import JOINED_BODY_BYTES, LimitedHttpToolsProtocol

BODY = b'{"ok":true}'


class _Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _answering(body: bytes) -> Any:
    """An app answering as this service does: a head, then the whole body in one message."""

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return answer


_answer = _answering(BODY)


async def _fails_after_the_head(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("the body never came")


async def _served(app: Any, *chunks: bytes) -> _Recording:
    """The writes of a protocol fed these chunks, each once the last one's work settled."""
    config = Config(app=app, log_level="critical", lifespan="off")
    config.load()
    loop = asyncio.get_running_loop()
    protocol = LimitedHttpToolsProtocol(config, ServerState(), {}, loop)
    transport = _Recording()
    protocol.connection_made(transport)
    try:
        for chunk in chunks:
            protocol.data_received(chunk)
            for _ in range(20):
                await asyncio.sleep(0)
    finally:
        protocol.connection_lost(None)
    return transport


GET = b"GET /users/u1 HTTP/1.1\r\nhost: x\r\n\r\n"


@pytest.mark.anyio
async def test_a_response_is_one_write_of_head_and_body() -> None:
    transport = await _served(_answer, GET)
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == BODY


@pytest.mark.anyio
async def test_a_large_body_follows_the_head_in_a_write_of_its_own() -> None:
    large = b"x" * (JOINED_BODY_BYTES + 1)
    transport = await _served(_answering(large), GET)
    assert len(transport.writes) == 2
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n")
    assert transport.writes[1] == large
    at_limit = b"x" * JOINED_BODY_BYTES
    transport = await _served(_answering(at_limit), GET)
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(b"\r\n\r\n" + at_limit)


@pytest.mark.anyio
async def test_keep_alive_requests_are_one_write_each() -> None:
    transport = await _served(_answer, GET, GET, GET)
    assert len(transport.writes) == 3
    assert all(write.endswith(b"\r\n\r\n" + BODY) for write in transport.writes)


@pytest.mark.anyio
async def test_the_head_of_a_head_request_is_written_without_a_body() -> None:
    transport = await _served(_answer, b"HEAD /users/u1 HTTP/1.1\r\nhost: x\r\n\r\n")
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n")


@pytest.mark.anyio
async def test_100_continue_goes_out_before_the_body_is_sent() -> None:
    head = (
        b"PUT /users/u1 HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n"
        b"content-length: %d\r\n\r\n" % len(BODY)
    )
    transport = await _served(_answer, head, BODY)
    assert transport.writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert b"".join(transport.writes[1:]).endswith(b"\r\n\r\n" + BODY)


@pytest.mark.anyio
async def test_a_held_head_is_written_before_the_connection_closes() -> None:
    transport = await _served(_fails_after_the_head, GET)
    assert transport.closed
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
