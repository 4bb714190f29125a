"""Which event loop a serving worker runs, by database.

On SQLite a read runs on the event loop's own thread (app.reads.fast) and a
write's turn too (app.group_commit): a worker is busy on its loop, not
waiting on a socket. Under that load uvloop served connections unevenly:
with 64 connections on two workers a list page's median was 24 ms, its
p99 70-135 ms and its slowest answers 0.4 s, though the handler took under
5 ms each time. On asyncio's own loop the p99 was 30 ms at the same
throughput. A bare server with a fixed 0.7 ms of work per request shows
the same on its own (p99 1.1 s on uvloop, 60 ms on asyncio): it is the
loop, not this application.

On PostgreSQL every request waits on the database's socket; uvloop served
about 12 % more point lookups a second there, with a tail no longer than
asyncio's, so it keeps uvloop, uvicorn's default.

asyncio's loop needs one change to serve several workers: it accepts as
many queued connections as there are (up to the listen backlog) each time
the listening socket is ready, so the first worker to wake took a burst of
new connections whole and the other one had none: half the throughput and
twice the latency for as long as those connections lived. Here a worker
takes one connection per turn of its loop, so the workers share a burst,
and a busy worker leaves new connections to an idle one. (Its other need,
TCP_NODELAY, is set by app.connections.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.settings import Settings

# uvicorn's `loop` setting: an import path is taken as the loop factory itself.
SERVING_LOOP = f"{__name__}:ServingLoop"


class ServingLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, taking one new connection each time the listening socket is ready."""

    def _accept_connection(
        self,
        protocol_factory: Any,
        sock: Any,
        sslcontext: Any = None,
        server: Any = None,
        backlog: int = 100,
        *rest: Any,
    ) -> None:
        # `backlog` is the number of accept() calls per readiness: one. The
        # listening socket stays ready while more wait, so the next turn (of
        # whichever worker's loop comes first) takes the next one.
        accept = super()._accept_connection  # type: ignore[misc]
        accept(protocol_factory, sock, sslcontext, server, 1, *rest)


def event_loop(settings: Settings) -> str:
    """uvicorn's `loop` setting for this database."""
    return SERVING_LOOP if settings.is_sqlite else "auto"
