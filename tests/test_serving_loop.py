"""The serving worker's event loop: one new connection per turn, no delayed ACKs."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from app.connections import LimitedHttpToolsProtocol
from app.serving_loop import SERVING_LOOP, ServingLoop, event_loop
from app.settings import Settings
from tests.support.sockets import LOOPBACK

QUEUED = 3


def _listener() -> socket.socket:
    # As uvicorn makes the socket its workers share: the protocol not named (proto 0).
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(16)
    return listener


@pytest.fixture
def queued() -> Iterator[socket.socket]:
    """A listening socket with QUEUED connections waiting to be accepted."""
    with ExitStack() as stack:
        listener = stack.enter_context(closing(_listener()))
        for _ in range(QUEUED):
            stack.enter_context(socket.create_connection(listener.getsockname()))
        yield listener


def _waiting(listener: socket.socket) -> int:
    """How many connections the kernel still holds for accept()."""
    listener.setblocking(False)
    taken = 0
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return taken
        connection.close()
        taken += 1


class _Hangup(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def _ready_once(loop: asyncio.SelectorEventLoop, listener: socket.socket) -> None:
    """What the loop does when the listening socket turns ready, then its accepts settle."""
    listener.setblocking(False)
    loop._accept_connection(_Hangup, listener, None, None, 100)  # type: ignore[attr-defined]
    loop.run_until_complete(asyncio.sleep(0.05))


@pytest.mark.parametrize(
    ("loop_class", "left"),
    [(asyncio.SelectorEventLoop, 0), (ServingLoop, QUEUED - 1)],
    ids=["asyncio-takes-all", "ours-takes-one"],
)
def test_a_worker_takes_one_queued_connection_each_time_its_socket_is_ready(
    queued: socket.socket, loop_class: Callable[[], asyncio.SelectorEventLoop], left: int
) -> None:
    loop = loop_class()
    try:
        _ready_once(loop, queued)
    finally:
        loop.close()
    assert _waiting(queued) == left


def _accepted_no_delay(make_protocol: Callable[[], asyncio.Protocol]) -> int:
    """TCP_NODELAY of a connection accepted on a uvicorn-like socket and given to the protocol."""
    loop = ServingLoop()
    try:
        with closing(_listener()) as listener, socket.create_connection(listener.getsockname()):
            accepted, _ = listener.accept()
            transport, _ = loop.run_until_complete(
                loop.connect_accepted_socket(make_protocol, accepted)
            )
            option = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            transport.close()
            loop.run_until_complete(asyncio.sleep(0))
            return option
    finally:
        loop.close()


def test_the_http_protocol_sends_without_waiting_for_acks() -> None:
    # The premise: asyncio leaves Nagle's algorithm on for such a socket.
    assert _accepted_no_delay(asyncio.Protocol) == 0
    config = Config(app=lambda: None)
    config.load()

    def protocol() -> asyncio.Protocol:
        return LimitedHttpToolsProtocol(config, ServerState(), {}, asyncio.get_running_loop())

    assert _accepted_no_delay(protocol) != 0


@pytest.mark.parametrize(
    ("url", "loop"),
    [
        ("sqlite:///grouped-users.db", SERVING_LOOP),
        ("postgresql+asyncpg://postgres@127.0.0.1:5432/test", "auto"),
    ],
)
def test_sqlite_serves_on_asyncio_and_postgresql_on_uvicorns_default(url: str, loop: str) -> None:
    assert event_loop(Settings(database_url=url)) == loop
