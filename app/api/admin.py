"""/tokens and /audit: what only admins may see and do."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from app.api.deps import TokenPath
from app.api.docs import BODY_ERRORS, problem_responses
from app.auth import DURATION_RULE, parse_duration
from app.errors import InvalidCursor, InvalidToken, TokenExists, TokenNotFound
from app.schemas import AuditEntryOut, AuditPage, TokenCreate, TokenCreated, TokenOut
from app.service import audit, tokens
from app.timestamps import parse_timestamp
from app.web.access import AdminRoute, CurrentActor
from app.web.sessions import ReaderSession, WriterSession

router = APIRouter(route_class=AdminRoute)


def _timestamp(value: object) -> object:
    # Before pydantic's own datetime, which takes "0.5" as a Unix time.
    if not isinstance(value, str):
        return value
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise PydanticCustomError("timestamp", str(exc)) from None


@router.get("/tokens", tags=["tokens"], response_model=list[TokenOut])
async def list_tokens(session: ReaderSession) -> list[TokenOut]:
    """List the API tokens (never their secrets)."""
    return [TokenOut(**vars(info)) for info in await tokens.list_tokens(session)]


@router.post(
    "/tokens",
    tags=["tokens"],
    status_code=status.HTTP_201_CREATED,
    response_model=TokenCreated,
    responses=problem_responses(
        TokenExists("ci"), InvalidToken("expires_in", "must be a duration"), *BODY_ERRORS
    ),
)
async def create_token(
    spec: TokenCreate, session: WriterSession, response: Response, actor: CurrentActor
) -> TokenCreated:
    """Create an API token; the response holds its secret, shown this once."""
    expires_in: timedelta | None = None
    if spec.expires_in is not None:
        seconds = parse_duration(spec.expires_in)
        if seconds is None:
            raise InvalidToken("expires_in", DURATION_RULE)
        expires_in = timedelta(seconds=seconds)
    info, secret = await tokens.create_token(
        session, actor=actor, name=spec.name, role=spec.role, expires_in=expires_in
    )
    response.headers["Location"] = f"/tokens/{info.name}"
    return TokenCreated(**vars(info), token=secret)


@router.delete(
    "/tokens/{name}",
    tags=["tokens"],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(TokenNotFound("ci")),
)
async def revoke_token(name: TokenPath, session: WriterSession, actor: CurrentActor) -> Response:
    """Revoke an API token: it stops working at once."""
    await tokens.revoke_token(session, actor=actor, name=name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/audit", tags=["audit"], response_model=AuditPage, responses=problem_responses(InvalidCursor())
)
async def list_audit(
    session: ReaderSession,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
    resource: Annotated[
        str | None, Query(description="Only this resource, e.g. users/jsmith.")
    ] = None,
    actor: Annotated[str | None, Query(description="Only changes by this token name.")] = None,
    since: Annotated[
        datetime | None,
        BeforeValidator(_timestamp),
        Query(
            description="Only changes at or after this time: an ISO 8601 date-time such as"
            " 2024-05-01T12:00:00Z; without an offset it is UTC."
        ),
    ] = None,
) -> AuditPage:
    """The audit log, newest first: who changed what, when, before and after."""
    page = await audit.list_entries(
        session, limit=limit, cursor=cursor, resource=resource, actor=actor, since=since
    )
    return AuditPage(
        items=[AuditEntryOut(**vars(entry)) for entry in page.items],
        next_cursor=page.next_cursor,
    )
