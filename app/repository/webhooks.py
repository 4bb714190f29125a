"""Queries on webhooks, their queued deliveries and the attempts made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.models import Event, Webhook, WebhookAttempt, WebhookDelivery

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class WebhookInfo:
    """What an admin sees of an endpoint (the API's answers are built from these fields)."""

    id: str
    url: str
    types: list[str] | None
    enabled: bool
    description: str | None
    created_at: datetime


@dataclass(frozen=True)
class WebhookRow(WebhookInfo):
    """An endpoint as stored: what an admin sees, and what only delivery reads."""

    secret: str
    cursor: int
    failing_since: datetime | None
    previous_secret: str | None
    previous_secret_until: datetime | None


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    webhook_id: str
    event_position: int
    event_id: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime


@dataclass(frozen=True)
class AttemptRow:
    delivery_id: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


_WEBHOOK = (
    Webhook.id,
    Webhook.url,
    Webhook.types,
    Webhook.enabled,
    Webhook.description,
    Webhook.created_at,
    Webhook.secret,
    Webhook.cursor,
    Webhook.failing_since,
    Webhook.previous_secret,
    Webhook.previous_secret_until,
)
_DELIVERY = (
    WebhookDelivery.id,
    WebhookDelivery.webhook_id,
    WebhookDelivery.event_position,
    WebhookDelivery.event_id,
    WebhookDelivery.state,
    WebhookDelivery.attempts,
    WebhookDelivery.created_at,
    WebhookDelivery.next_attempt_at,
)


def _webhook(row: Any) -> WebhookRow:
    id_, url, types, enabled, description, created_at, secret, cursor, failing, *previous = row
    return WebhookRow(
        id_, url, types, bool(enabled), description, created_at, secret, cursor, failing, *previous
    )


async def insert_webhook(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(Webhook).values(**values))


async def get(session: AsyncSession, *, webhook_id: str, lock: bool = False) -> WebhookRow | None:
    query = select(*_WEBHOOK).where(Webhook.id == webhook_id)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return None if row is None else _webhook(row)


async def list_all(session: AsyncSession) -> list[WebhookRow]:
    rows = await session.execute(select(*_WEBHOOK).order_by(Webhook.created_at, Webhook.id))
    return [_webhook(row) for row in rows]


async def update_webhook(session: AsyncSession, *, webhook_id: str, **values: Any) -> None:
    await session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def forget_previous_secrets(session: AsyncSession, *, before: datetime) -> None:
    await session.execute(
        update(Webhook)
        .where(Webhook.previous_secret_until < before)
        .values(previous_secret=None, previous_secret_until=None)
        .execution_options(synchronize_session=False)
    )


async def delete_webhook(session: AsyncSession, *, webhook_id: str) -> bool:
    result = await session.execute(
        delete(Webhook)
        .where(Webhook.id == webhook_id)
        .returning(Webhook.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


async def any_enabled(session: AsyncSession) -> bool:
    query = select(Webhook.id).where(Webhook.enabled.is_(True)).limit(1)
    return (await session.execute(query)).first() is not None


async def behind(session: AsyncSession, *, position: int) -> bool:
    """Whether an enabled endpoint has events up to `position` still to queue."""
    query = select(Webhook.id).where(Webhook.enabled.is_(True), Webhook.cursor < position)
    return (await session.execute(query.limit(1))).first() is not None


async def lock_for_fan_out(session: AsyncSession) -> list[WebhookRow]:
    """The enabled webhooks no other process is queueing for right now (locked)."""
    query = (
        select(*_WEBHOOK)
        .where(Webhook.enabled.is_(True))
        .order_by(Webhook.id)
        .with_for_update(skip_locked=True)
    )
    return [_webhook(row) for row in await session.execute(query)]


async def events_after(
    session: AsyncSession, *, position: int, limit: int
) -> list[tuple[int, str, str]]:
    """(position, id, type) of the next events of the feed."""
    rows = await session.execute(
        select(Event.position, Event.id, Event.type)
        .where(Event.position > position)
        .order_by(Event.position)
        .limit(limit)
    )
    return [(int(p), str(i), str(t)) for p, i, t in rows]


async def queue_deliveries(
    session: AsyncSession, *, webhook_id: str, events: Sequence[tuple[int, str]], at: datetime
) -> None:
    if events:
        await session.execute(
            insert(WebhookDelivery),
            [
                {
                    "webhook_id": webhook_id,
                    "event_position": position,
                    "event_id": event_id,
                    "state": PENDING,
                    "attempts": 0,
                    "created_at": at,
                    "next_attempt_at": at,
                }
                for position, event_id in events
            ],
        )


async def due_endpoints(session: AsyncSession, *, now: datetime, limit: int) -> list[str]:
    """Endpoints whose oldest pending delivery is due and that no process holds."""
    earlier = aliased(WebhookDelivery)
    head = and_(
        WebhookDelivery.state == PENDING,
        ~exists().where(
            earlier.webhook_id == WebhookDelivery.webhook_id,
            earlier.state == PENDING,
            earlier.event_position < WebhookDelivery.event_position,
        ),
    )
    rows = await session.scalars(
        select(WebhookDelivery.webhook_id)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(
            head,
            WebhookDelivery.next_attempt_at <= now,
            Webhook.enabled.is_(True),
            or_(Webhook.lease_until.is_(None), Webhook.lease_until < now),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    return list(dict.fromkeys(rows))


async def claim(
    session: AsyncSession, *, webhook_id: str, now: datetime, until: datetime, owner: str
) -> WebhookRow | None:
    """Hold the endpoint until `until` for this process, unless another holds it."""
    query = (
        select(*_WEBHOOK)
        .where(
            Webhook.id == webhook_id,
            Webhook.enabled.is_(True),
            or_(Webhook.lease_until.is_(None), Webhook.lease_until < now),
        )
        .with_for_update(skip_locked=True)
    )
    row = (await session.execute(query)).first()
    if row is None:
        return None
    await update_webhook(session, webhook_id=webhook_id, lease_until=until, lease_owner=owner)
    return _webhook(row)


async def head(session: AsyncSession, *, webhook_id: str) -> DeliveryRow | None:
    """The endpoint's oldest pending delivery: feed order, one at a time."""
    row = (
        await session.execute(
            select(*_DELIVERY)
            .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.state == PENDING)
            .order_by(WebhookDelivery.event_position)
            .limit(1)
        )
    ).first()
    return None if row is None else DeliveryRow(*row)


async def add_attempt(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(WebhookAttempt).values(**values))


async def update_delivery(session: AsyncSession, *, delivery_id: int, **values: Any) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def release(session: AsyncSession, *, webhook_id: str, owner: str, **values: Any) -> None:
    """Let go of the endpoint (if this process still holds it), setting `values`."""
    await session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id, Webhook.lease_owner == owner)
        .values(lease_until=None, lease_owner=None, **values)
        .execution_options(synchronize_session=False)
    )


async def deliveries(
    session: AsyncSession, *, webhook_id: str, limit: int
) -> list[tuple[DeliveryRow, list[AttemptRow]]]:
    """The latest deliveries, newest first, each with its attempts in order."""
    rows = [
        DeliveryRow(*row)
        for row in await session.execute(
            select(*_DELIVERY)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.event_position.desc())
            .limit(limit)
        )
    ]
    attempts: dict[int, list[AttemptRow]] = {row.id: [] for row in rows}
    if rows:
        found = await session.execute(
            select(
                WebhookAttempt.delivery_id,
                WebhookAttempt.at,
                WebhookAttempt.status_code,
                WebhookAttempt.error,
                WebhookAttempt.duration_ms,
            )
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.id)
        )
        for attempt in found:
            attempts[attempt[0]].append(AttemptRow(*attempt))
    return [(row, attempts[row.id]) for row in rows]


async def delivery_of(
    session: AsyncSession, *, webhook_id: str, event_id: str
) -> DeliveryRow | None:
    row = (
        await session.execute(
            select(*_DELIVERY).where(
                WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.event_id == event_id
            )
        )
    ).first()
    return None if row is None else DeliveryRow(*row)
