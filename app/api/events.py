"""/events: the change feed, in commit order, with long-polling."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, JsonValue, WithJsonSchema

from app.api.docs import problem_responses
from app.errors import CursorExpired, EventsOff, InvalidCursor
from app.service import events
from app.service.events import TYPES, FeedPage
from app.web.access import GuardedRoute
from app.web.sessions import ReaderSession, get_database


def _events_on(request: Request) -> None:
    if not request.app.state.settings.events:
        raise EventsOff()


router = APIRouter(route_class=GuardedRoute, tags=["events"], dependencies=[Depends(_events_on)])

# The longest wait a request may ask for, within the request time limit.
MAX_WAIT = 30


class EventOut(BaseModel):
    id: str = Field(description="Unique and opaque; webhooks send it as `webhook-id`.")
    type: str = Field(examples=["membership.added"])
    occurred_at: datetime = Field(description="The time of the change's transaction (UTC).")
    actor: str = Field(description="Who made the change, as the audit log names them.")
    request_id: str | None
    data: Annotated[
        JsonValue,
        WithJsonSchema(
            {
                "type": "object",
                "description": "What changed; its shape depends on the type (see the docs).",
                "examples": [{"group": "admins", "userid": "jsmith"}],
            }
        ),
    ]


class EventPage(BaseModel):
    """Events in commit order; pass `next_cursor` back as `after`, always."""

    items: list[EventOut]
    next_cursor: str = Field(description="Never null: with nothing new, the cursor sent.")


class CursorOut(BaseModel):
    cursor: str = Field(description="Follow the feed `after` this to see what changes from now.")


def _types(text: str | None) -> list[str] | None:
    if text is None:
        return None
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in TYPES]
    if unknown or not wanted:
        raise InvalidTypes(unknown)
    return wanted


class InvalidTypes(InvalidCursor):
    """A `types` list naming no event type we have; a 422 like a bad cursor."""

    def __init__(self, unknown: list[str]) -> None:
        super().__init__()
        named = ", ".join(repr(t) for t in unknown) or "nothing"
        self.detail = f"types lists {named}; the types are {', '.join(TYPES)}."
        self.args = (self.detail,)


def _page(page: FeedPage) -> dict[str, Any]:
    return {
        "items": [vars(item) for item in page.items],
        "next_cursor": page.next_cursor,
    }


@router.get(
    "/events",
    response_model=EventPage,
    responses=problem_responses(CursorExpired("..."), InvalidCursor(), EventsOff()),
)
async def list_events(
    request: Request,
    session: ReaderSession,
    after: Annotated[
        str | None,
        Query(description="`next_cursor` of the page before; none: the oldest event kept."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    types: Annotated[
        str | None,
        Query(description="Only these types, comma-separated.", examples=["membership.added"]),
    ] = None,
    wait: Annotated[
        int,
        Query(ge=0, le=MAX_WAIT, description="With nothing new, wait up to this many seconds."),
    ] = 0,
) -> dict[str, Any]:
    """The change feed: every committed change, once, in commit order."""
    wanted = _types(types)
    database = await get_database(request)

    async def read() -> FeedPage:
        return await events.read_page(
            database.reader() if wait else session, after=after, limit=limit, types=wanted
        )

    if not wait:
        return _page(await read())
    settings = request.app.state.settings
    # Answer before the request's time limit cancels it.
    longest = min(float(wait), max(settings.request_timeout_seconds - 2.0, 0.0))
    notifier = getattr(request.app.state, "event_notifier", None)
    page = await events.follow(
        read,
        bell=notifier.bell if notifier is not None else None,
        wait=longest,
        poll=notifier.poll if notifier is not None else 0.25,
    )
    return _page(page)


@router.get("/events/cursor", response_model=CursorOut, responses=problem_responses(EventsOff()))
async def current_cursor(session: ReaderSession) -> CursorOut:
    """The cursor of now: the feed after it holds what changes from here on."""
    return CursorOut(cursor=await events.current_cursor(session))
