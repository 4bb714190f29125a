"""ASGI middleware: security headers on every response, and a time limit per request."""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import PROBLEM_JSON, http_problem


class SecurityHeadersMiddleware:
    """nosniff everywhere; no-store on every answer that needed credentials."""

    def __init__(self, app: ASGIApp, *, authenticated: bool) -> None:
        self.app = app
        # With auth required every API answer was given to a credential.
        self.authenticated = authenticated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = self.authenticated or "authorization" in Headers(scope=scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if no_store:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TimeoutMiddleware:
    """Cut a request off after `seconds`: its transaction rolls back, the client gets a 503."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if started:
                raise
            detail = (
                f"The request took longer than {self.seconds:g} s and was abandoned;"
                " nothing changed."
            )
            body = http_problem(503, detail, "request_timeout")
            body["title"] = "Request timeout"
            response = JSONResponse(
                body, status_code=503, media_type=PROBLEM_JSON, headers={"Retry-After": "1"}
            )
            await response(scope, receive, send)
