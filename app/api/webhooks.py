"""/webhooks: endpoints that receive the change feed, signed (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, get_type_hints

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from app.api.docs import BODY_ERRORS, problem_responses, validation_example
from app.errors import DeliveryNotFound, InvalidWebhook, WebhookNotFound
from app.service import webhooks
from app.service.events import TYPES
from app.settings import Settings
from app.web.access import AdminRoute, CurrentActor
from app.web.sessions import ReaderSession, WriterSession
from app.webhooks.signing import SecretBox

router = APIRouter(route_class=AdminRoute, tags=["webhooks"])

EventType = Annotated[str, Field(examples=list(TYPES))]


class WebhookCreate(BaseModel):
    """A new endpoint; the response holds its signing secret, shown this once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"url": "https://hooks.example.com/directory", "types": ["user.created"]}]
        },
    )

    url: str = Field(max_length=2048)
    types: list[EventType] | None = Field(default=None, description="None: every type.")
    description: str | None = Field(default=None, max_length=256)


class WebhookPatch(BaseModel):
    """What is sent changes."""

    model_config = ConfigDict(extra="forbid")

    # Absent keeps them; null is refused, so the document shows only what they may be.
    url: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "maxLength": 2048, "description": "Never null."}),
    ] = Field(default=None, max_length=2048)
    types: list[EventType] | None = None
    enabled: Annotated[
        bool | None, WithJsonSchema({"type": "boolean", "description": "Never null."})
    ] = None
    description: str | None = Field(default=None, max_length=256)


# An endpoint as the answers show it: the fields of WebhookInfo (app.repository.webhooks).
_SHOWN: dict[str, Any] = {
    name: (hint, ...) for name, hint in get_type_hints(webhooks.WebhookInfo).items()
}
WebhookOut: type[BaseModel] = create_model("WebhookOut", **_SHOWN)
WebhookCreated: type[BaseModel] = create_model(
    "WebhookCreated",
    __base__=WebhookOut,
    secret=(str, Field(description="whsec_ and base64: verify signatures with it. Shown once.")),
)


class SecretOut(BaseModel):
    secret: str = Field(description="The new secret, whsec_ and base64. Shown once.")
    previous_valid_until: datetime | None = Field(
        description="Until then each delivery is signed with the previous secret too "
        "(GROUPED_USERS_WEBHOOK_SECRET_OVERLAP_HOURS); null: the previous one stopped at once."
    )


class AttemptOut(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    event_id: str
    state: str = Field(examples=["pending", "delivered", "failed"])
    next_attempt_at: datetime | None
    attempts: list[AttemptOut]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _box(request: Request) -> SecretBox:
    return webhooks.secret_box(_settings(request))


async def _checked_url(request: Request, url: str) -> str:
    return await webhooks.checked_url(_settings(request), url)


def _out(info: webhooks.WebhookInfo) -> BaseModel:
    return WebhookOut(**vars(info))


_NOT_FOUND = WebhookNotFound("wh_0123")
_INVALID = InvalidWebhook("url", "must start with https://")


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=problem_responses(_INVALID, *BODY_ERRORS),
)
async def create_webhook(
    spec: WebhookCreate,
    request: Request,
    response: Response,
    session: WriterSession,
    actor: CurrentActor,
) -> BaseModel:
    """Register an endpoint: it receives, signed, every event committed from now on."""
    url = await _checked_url(request, spec.url)
    info, secret = await webhooks.create_webhook(
        session,
        actor=actor,
        box=_box(request),
        url=url,
        types=spec.types,
        description=spec.description,
    )
    response.headers["Location"] = f"/webhooks/{info.id}"
    return WebhookCreated(**vars(info), secret=secret)


@router.get("/webhooks", response_model=list[WebhookOut])
async def list_webhooks(session: ReaderSession) -> list[BaseModel]:
    """The registered endpoints (never their secrets)."""
    return [_out(info) for info in await webhooks.list_webhooks(session)]


@router.get(
    "/webhooks/{webhook_id}", response_model=WebhookOut, responses=problem_responses(_NOT_FOUND)
)
async def get_webhook(webhook_id: str, session: ReaderSession) -> BaseModel:
    """One endpoint."""
    return _out(await webhooks.get_webhook(session, webhook_id=webhook_id))


@router.patch(
    "/webhooks/{webhook_id}",
    response_model=WebhookOut,
    responses=problem_responses(_NOT_FOUND, _INVALID, *BODY_ERRORS),
)
async def change_webhook(
    webhook_id: str,
    patch: WebhookPatch,
    request: Request,
    session: WriterSession,
    actor: CurrentActor,
) -> BaseModel:
    """Change the URL, types, description, or turn it off and on (back on: from now)."""
    changes: dict[str, Any] = patch.model_dump(exclude_unset=True)
    for field in ("url", "enabled"):
        if field in changes and changes[field] is None:
            raise InvalidWebhook(field, "may not be null")
    if "url" in changes:
        changes["url"] = await _checked_url(request, changes["url"])
    info = await webhooks.change_webhook(
        session, actor=actor, webhook_id=webhook_id, changes=changes
    )
    return _out(info)


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(_NOT_FOUND),
)
async def delete_webhook(webhook_id: str, session: WriterSession, actor: CurrentActor) -> Response:
    """Remove an endpoint and its pending deliveries."""
    await webhooks.delete_webhook(session, actor=actor, webhook_id=webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    response_model=SecretOut,
    responses=problem_responses(_NOT_FOUND),
)
async def rotate_secret(
    webhook_id: str, request: Request, session: WriterSession, actor: CurrentActor
) -> SecretOut:
    """A new signing secret, shown this once; deliveries are signed with it from now on.

    The previous secret keeps signing for an overlap (24 hours by default):
    until `previous_valid_until` each delivery's `webhook-signature` holds two
    space-separated `v1,` signatures, one per secret, and a receiver accepts
    it with either. Deploy the new secret to the receiver within the overlap.
    """
    rotation = await webhooks.rotate_secret(
        session,
        actor=actor,
        box=_box(request),
        webhook_id=webhook_id,
        overlap=_settings(request).webhook_secret_overlap,
    )
    return SecretOut(secret=rotation.secret, previous_valid_until=rotation.previous_valid_until)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=list[DeliveryOut],
    responses=problem_responses(
        _NOT_FOUND,
        validation_example("invalid_query", "limit", "Input should be less than or equal to 1000"),
    ),
)
async def list_deliveries(
    webhook_id: str,
    session: ReaderSession,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many, newest first.")] = 100,
) -> list[DeliveryOut]:
    """The latest deliveries, newest first, with every attempt: time, status or error, duration."""
    found = await webhooks.list_deliveries(session, webhook_id=webhook_id, limit=limit)
    return [
        DeliveryOut(
            event_id=d.event_id,
            state=d.state,
            next_attempt_at=d.next_attempt_at,
            attempts=[
                AttemptOut(
                    at=a.at, status_code=a.status_code, error=a.error, duration_ms=a.duration_ms
                )
                for a in d.attempts
            ],
        )
        for d in found
    ]


@router.post(
    "/webhooks/{webhook_id}/deliveries/{event_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses=problem_responses(_NOT_FOUND, DeliveryNotFound("wh_0123", "evt_0123")),
)
async def retry_delivery(
    webhook_id: str, event_id: str, session: WriterSession, actor: CurrentActor
) -> Response:
    """Send this event to the endpoint again, now (before its later events)."""
    await webhooks.retry_delivery(session, actor=actor, webhook_id=webhook_id, event_id=event_id)
    return Response(status_code=status.HTTP_202_ACCEPTED)
