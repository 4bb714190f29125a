"""uvicorn's httptools protocol with limits on header size, header time and open connections.

`serve` passes the class as uvicorn's `http`, so each worker applies the
limits per connection, below the application: an attacker's bytes never
reach the ASGI app, and an ordinary request pays a few attribute updates.

- The header block of each request (request line and headers) is capped at
  GROUPED_USERS_MAX_HEADER_BYTES: over it, 431 and the connection closed.
  Bytes are counted before httptools sees them, because httptools gathers a
  header value across reads into one growing bytes object: a 64 MiB header
  cost seconds of CPU and its size in memory before any callback ran.
- The headers of a request must be complete within
  GROUPED_USERS_HEADER_TIMEOUT_SECONDS of the connection opening or of the
  previous response: else 408 if part of a request came, a silent close if
  none did (as an idle keep-alive connection is closed).
- A worker holds at most GROUPED_USERS_MAX_CONNECTIONS connections: the next
  one gets 503 and is closed at once, while those already open are served.
  (uvicorn's own limit_concurrency answers 503 to every request, on every
  connection, once that many are open: the attacker's idle connections
  would turn everyone away.)

And one thing for speed: a response's head and body leave in one write
(`HeadWithBody`), where uvicorn makes two.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app.api.problems import PROBLEM_JSON, problem
from app.settings import get_settings

log = logging.getLogger("grouped_users.connections")

# A flood of refused connections is one warning a minute, not one line each.
WARN_EVERY_SECONDS = 60.0


def _close_with(status: int, code: str, title: str, detail: str, *extra: bytes) -> bytes:
    """A whole problem+json response that ends the connection, made once at import."""
    body = json.dumps(problem(status, code, title, detail)).encode()
    head = [
        STATUS_LINE[status],
        b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n",
        *extra,
        b"\r\n",
    ]
    return b"".join(head) + body


HEADER_TOO_LARGE = _close_with(
    431,
    "header_too_large",
    "Header too large",
    "The request line and headers are over the server's limit.",
)
HEADER_TIMEOUT = _close_with(
    408,
    "request_header_timeout",
    "Request header timeout",
    "The request's headers did not arrive in time.",
)
TOO_MANY_CONNECTIONS = _close_with(
    503,
    "too_many_connections",
    "Too many connections",
    "The server holds as many connections as it may; retry shortly.",
    b"retry-after: 1\r\n",
)


def _no_delay(transport: asyncio.Transport) -> None:
    """Send each write at once (TCP_NODELAY), whatever the loop did.

    asyncio's loop sets it only on sockets made for TCP by name, and
    uvicorn's listening socket, shared by several workers, is made without
    naming the protocol: its connections then held each response's body
    until the client acknowledged the head, a delayed ACK, 40 ms a request.
    uvloop sets it on every TCP connection; setting it again costs nothing.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# Bodies up to this size leave in the head's write; a larger one after it.
JOINED_BODY_BYTES = 64 * 1024


class HeadWithBody(asyncio.Transport):
    """A request's view of its connection: the response's head goes out with the body.

    uvicorn writes the status line and headers when the response starts and
    the body when it comes: two send() calls and two TCP segments for each
    answer, though this service gives every body in one message. Held until
    the body's first write (or a close), the head leaves in the same send;
    a send cost more than the lookup a GET runs.

    A body over JOINED_BODY_BYTES follows in a write of its own: joining it
    would copy it (a group of 100,000 members is megabytes), for a send
    that costs little beside it. Only the first write is held, so nothing
    else waits: not for HEAD (no body is written) nor when the client waits
    for `100 Continue` (that interim answer must go at once); the protocol
    leaves those alone. It keeps no reference to the request's cycle: a
    cycle between the two made a garbage cycle per request, and the
    collector's pauses put tens of milliseconds on the tail.
    """

    __slots__ = ("_connection", "_head")

    def __init__(self, connection: asyncio.Transport) -> None:
        super().__init__()
        self._connection = connection
        # None until the first write; then what is held (b"" once sent).
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is None:
            self._head = bytes(data)
        elif head:
            self._head = b""
            if len(data) > JOINED_BODY_BYTES:
                # Joined, a large body would be copied whole: two sends cost less.
                self._connection.write(head)
                self._connection.write(data)
            else:
                self._connection.write(head + data)
        else:
            self._connection.write(data)

    def close(self) -> None:
        if self._head:
            self._connection.write(self._head)
            self._head = b""
        self._connection.close()

    def is_closing(self) -> bool:
        return self._connection.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._connection.get_extra_info(name, default)

    def abort(self) -> None:
        self._connection.abort()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    # Of this worker: when it last said it turned connections away, and how many since.
    _warned_at: ClassVar[float | None] = None
    _refused_since_warning: ClassVar[int] = 0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # Every worker reads the same environment as the process that started it.
        settings = get_settings()
        self._max_header_bytes = settings.max_header_bytes
        self._header_timeout = settings.header_timeout_seconds
        self._max_connections = settings.max_connections
        # Bytes of the header block so far; None while a request's body is read,
        # whose size is the application's to limit.
        self._header_bytes: int | None = 0
        # When the wait for the next request's headers began; None while a
        # request is in flight (headers done, answer not yet complete).
        self._waiting_since: float | None = None
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        if len(self.connections) >= self._max_connections:
            self.transport = transport
            transport.write(TOO_MANY_CONNECTIONS)
            transport.close()
            self._warn_refused()
            return
        _no_delay(transport)
        super().connection_made(transport)
        self._waiting_since = self.loop.time()
        # One timer per connection, re-armed only when it fires: the clock
        # itself is a timestamp set per request, cheaper than a timer each.
        self._header_timer = self.loop.call_later(self._header_timeout, self._check_header_time)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counted = self._header_bytes
        if counted is None:
            super().data_received(data)
            return
        room = self._max_header_bytes - counted
        if len(data) <= room:
            self._header_bytes = counted + len(data)
            super().data_received(data)
            return
        # More than the room left: the headers must end within it. What
        # follows them (a body, a pipelined request) is then fed as usual.
        self._header_bytes = self._max_header_bytes
        super().data_received(data[:room])
        if self.transport.is_closing():
            return
        if self._header_bytes is not None and self._header_bytes >= self._max_header_bytes:
            self._refuse(HEADER_TOO_LARGE)
            return
        self.data_received(data[room:])

    def on_headers_complete(self) -> None:
        self._header_bytes = None
        self._waiting_since = None
        super().on_headers_complete()
        cycle = self.cycle
        if cycle.scope["method"] != "HEAD" and not cycle.waiting_for_100_continue:
            cycle.transport = HeadWithBody(cycle.transport)

    def on_message_complete(self) -> None:
        self._header_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # With a pipelined request started, the latest request is still in flight.
        if self.cycle.response_complete:
            self._waiting_since = self.loop.time()

    def _check_header_time(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        wait = self._header_timeout
        if self._waiting_since is not None:
            wait = self._waiting_since + self._header_timeout - self.loop.time()
            if wait <= 0:
                # A silent connection is an idle keep-alive one: closed without a word.
                self._refuse(HEADER_TIMEOUT if self._header_bytes else b"")
                return
        self._header_timer = self.loop.call_later(wait, self._check_header_time)

    def _refuse(self, response: bytes) -> None:
        if response:
            self.transport.write(response)
        self.transport.close()

    def _warn_refused(self) -> None:
        cls = LimitedHttpToolsProtocol
        cls._refused_since_warning += 1
        now = self.loop.time()
        if cls._warned_at is not None and now - cls._warned_at < WARN_EVERY_SECONDS:
            return
        log.warning(
            "connection limit reached: %d new connections refused with 503 "
            "(GROUPED_USERS_MAX_CONNECTIONS=%d per worker)",
            cls._refused_since_warning,
            self._max_connections,
        )
        cls._warned_at, cls._refused_since_warning = now, 0
