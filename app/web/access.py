"""Who may call what: bearer tokens, roles, and the route class that checks them first."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from app.auth import ANONYMOUS, Actor, Role
from app.db import Database
from app.errors import Busy, Forbidden, Unauthenticated
from app.service import tokens
from app.web.body import checked_json

log = logging.getLogger("grouped_users.auth")

# Declares the scheme in OpenAPI (Swagger's Authorize button); the check is ours.
bearer = HTTPBearer(auto_error=False, description="An API token: `grouped-users token create`.")


async def authenticate(request: Request) -> Actor:
    """The actor of the request: from its bearer token, or anonymous with auth disabled."""
    # The state dict itself, which request.state wraps (EdgeMiddleware put the ids there).
    state = request.scope.get("state", {})
    request_id, server_request_id = state.get("request_id"), state.get("server_request_id")
    if request.app.state.settings.auth == "disabled":
        return Actor(ANONYMOUS, Role.admin, request_id, server_request_id)
    credentials = await bearer(request)
    if credentials is None or not credentials.credentials.strip():
        raise Unauthenticated()
    database: Database = request.app.state.database
    found = await tokens.authenticate(
        database.statement_reader(),
        secret=credentials.credentials.strip(),
        request_id=request_id,
        server_request_id=server_request_id,
    )
    if found.stale:
        try:
            async with database.writer() as session:
                await tokens.mark_used(session, token_id=found.token_id)
        except Busy:
            # Only bookkeeping: the request goes on, the next one will write it.
            log.warning("could not record the last use of token %s", found.actor.name)
    return found.actor


class GuardedRoute(APIRoute):
    """A route that lets in only callers of its role, before anything else is read.

    GETs need a reader, other methods a writer; subclasses raise the bar.
    The caller's actor is then in request.state.actor. A JSON body is
    checked (size, media type) only once the caller is known.
    """

    least_role: Role | None = None

    def required_role(self) -> Role:
        if self.least_role is not None:
            return self.least_role
        return Role.reader if (self.methods or set()) <= {"GET", "HEAD"} else Role.writer

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        role = self.required_role()
        has_body = self.body_field is not None

        async def guarded(request: Request) -> Response:
            actor = await authenticate(request)
            if actor.role < role:
                raise Forbidden(role.name)
            # As request.state.actor, without making a State per request.
            request.scope.setdefault("state", {})["actor"] = actor
            if has_body:
                request = await checked_json(request)
            return await handler(request)

        return guarded


class AdminRoute(GuardedRoute):
    least_role = Role.admin


async def _actor(request: Request) -> Actor:
    actor: Actor = request.state.actor
    return actor


# The caller of a GuardedRoute, for the audit log.
CurrentActor = Annotated[Actor, Depends(_actor)]
