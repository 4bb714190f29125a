"""The edge of every HTTP request, as one ASGI layer.

In order: a request id (the client's X-Request-ID if sane, else a new one),
with auth disabled the Host and Origin checks (app.api.local_only), HEAD
answered as GET without its body, metrics and one JSON log line, security
headers (nosniff everywhere, no-store on every answer that needed
credentials), and a time limit (app.api.deadlines). One layer, not four:
each ASGI middleware costs a coroutine and a wrapped `send` per request,
which on a point lookup is a measurable share of the whole.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.api.deadlines import Deadlines
from app.api.local_only import LocalOnly
from app.api.problems import PROBLEM_JSON, http_problem

log = logging.getLogger("grouped_users.requests")

_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Methods that get a label of their own in the metrics; a client may send
# any token as a method, and each would be a new series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestIds:
    """New request ids: a random prefix per process, then a counter.

    32 hex digits, as a UUID's: 64 random bits per process, then 64 bits of
    counter. Unique across processes and restarts, without reading the
    system's random source on every request.
    """

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._numbers = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._numbers):016x}"


_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")


def _edge_headers(
    headers: Iterable[tuple[bytes, bytes]], request_id: str, no_store: bool
) -> list[tuple[bytes, bytes]]:
    """The answer's headers with ours: its request id unless it has one, nosniff,
    and no-store in place of any Cache-Control when credentials were involved.

    On the raw ASGI list (names are lower case there): MutableHeaders decodes
    every name on each lookup, a few microseconds per answer.
    """
    replaced = (b"x-content-type-options", b"cache-control") if no_store else _NOSNIFF[:1]
    edged = [(name, value) for name, value in headers if name not in replaced]
    if b"x-request-id" not in {name for name, _ in edged}:
        edged.append((b"x-request-id", request_id.encode("latin-1")))
    edged.append(_NOSNIFF)
    if no_store:
        edged.append(_NO_STORE)
    return edged


def _declared_public(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(name == b"cache-control" and value.startswith(b"public") for name, value in headers)


def route_template(scope: Scope) -> str:
    """The route's path template (/users/{userid}), never the raw path: bounded labels."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or "<unmatched>")


class EdgeMiddleware:
    """Request id, metrics, log line, security headers and time limit for every request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticated: bool,
        timeout_seconds: float,
        local_only: LocalOnly | None = None,
    ) -> None:
        self.app = app
        # With auth required every API answer was given to a credential.
        self.authenticated = authenticated
        # With auth disabled: only loopback Hosts, changes only from our own origin.
        self.local_only = local_only
        self.timeout_seconds = timeout_seconds
        # Its sweep, about once a second while requests are in flight, also
        # brings the metrics up to date (metrics.Tally).
        self._deadlines = Deadlines(timeout_seconds, on_sweep=metrics.TALLY.flush)
        # Histogram children by label values: labels() takes a lock and builds
        # a key on every call; the label sets are few (routes x methods).
        self._histograms: dict[tuple[str, str], Any] = {}
        self._request_ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent_id = host = b""
        credentials = False
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                sent_id = value
            elif key == b"authorization":
                credentials = True
            elif key == b"host":
                host = value
        no_store = credentials or self.authenticated
        # Ours is unique; the client's, echoed back, may be shared by many
        # requests: the log line and the audit log keep both.
        server_id = self._request_ids.next()
        request_id = sent_id.decode("latin-1") if _SANE_REQUEST_ID.fullmatch(sent_id) else server_id
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["server_request_id"] = server_id
        refusal = None if self.local_only is None else self.local_only.refusal(scope, host)
        method = scope["method"]
        head = method == "HEAD"
        if head:
            # HEAD is GET without the body (RFC 9110 9.3.2): routes declare GET
            # only, and the server (uvicorn) leaves out the body of its scope's
            # HEAD. Same headers, Content-Length included.
            scope = {**scope, "method": "GET"}
        status = 500
        responded = False

        async def send_at_edge(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = message["status"]
                responded = True
                headers = message.get("headers", ())
                # A file that holds no data (the docs' scripts) says "public":
                # asked for without credentials, it may be cached.
                private = no_store and (credentials or not _declared_public(headers))
                message["headers"] = _edge_headers(headers, request_id, private)
            elif head:
                message = {**message, "body": b""}
            await send(message)

        tally = metrics.TALLY
        tally.in_flight += 1
        try:
            if refusal is not None:
                await self._refuse(*refusal, scope, receive, send_at_edge)
            elif await self._deadlines.run(self.app(scope, receive, send_at_edge)):
                if responded:
                    raise TimeoutError("the request ran out of time while answering")
                # Its transaction was rolled back when the task was cancelled.
                await self._timed_out(scope, receive, send_at_edge)
        finally:
            tally.in_flight -= 1
            self._observe(
                scope, method, status, time.perf_counter() - started, request_id, server_id
            )

    async def _refuse(
        self, status: int, code: str, detail: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        response = JSONResponse(
            http_problem(status, detail, code), status_code=status, media_type=PROBLEM_JSON
        )
        await response(scope, receive, send)

    async def _timed_out(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = (
            f"The request took longer than {self.timeout_seconds:g} s and was abandoned;"
            " nothing changed."
        )
        body = http_problem(503, detail, "request_timeout")
        body["title"] = "Request timeout"
        response = JSONResponse(
            body, status_code=503, media_type=PROBLEM_JSON, headers={"Retry-After": "1"}
        )
        await response(scope, receive, send)

    def _observe(
        self,
        scope: Scope,
        method: str,
        status: int,
        elapsed: float,
        request_id: str,
        server_id: str,
    ) -> None:
        route = route_template(scope)
        label = method if method in KNOWN_METHODS else "other"
        answered = metrics.TALLY.answered
        key = (label, route, status)
        answered[key] = answered.get(key, 0) + 1
        histogram = self._histograms.get((label, route))
        if histogram is None:
            histogram = metrics.LATENCY.labels(label, route)
            self._histograms[(label, route)] = histogram
        histogram.observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s %s",
                method,
                scope["path"],
                status,
                extra={
                    "method": method,
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "request_id": request_id,
                    "server_request_id": server_id,
                },
            )
