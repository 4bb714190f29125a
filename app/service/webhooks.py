"""Use cases of webhooks: what admins do with endpoints, and each step of a delivery."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Actor, Role
from app.clock import as_utc, now
from app.errors import DeliveryNotFound, InvalidWebhook, WebhookNotFound
from app.repository import events as event_repo
from app.repository import webhooks as repo
from app.repository.events import EventRow
from app.repository.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    AttemptRow,
    DeliveryRow,
)
from app.repository.webhooks import WebhookInfo as WebhookInfo  # what the doors show
from app.service.audit import record as audit
from app.service.common import retried, transaction
from app.service.events import TYPES
from app.settings import Settings
from app.webhooks import addresses
from app.webhooks.signing import SecretBox, SecretUnavailable, new_secret

# Events queued per endpoint per pass; the next pass goes on from there.
_FAN_OUT_BATCH = 1000
# Who disables a failing endpoint, as the audit log names it.
_DELIVERY_ACTOR = Actor("webhook-delivery", Role.admin)


def secret_box(settings: Settings) -> SecretBox:
    """What seals endpoint secrets: GROUPED_USERS_SECRET_KEY's box, a plain one without it."""
    key = settings.secret_key
    return SecretBox(key.get_secret_value() if key is not None else None)


async def checked_url(settings: Settings, url: str) -> str:
    """`url` if these settings let an endpoint have it (scheme, public address), else 422."""
    try:
        await addresses.check(
            url,
            allow_http=settings.webhook_allow_http,
            allow_private=settings.webhook_allow_private,
        )
    except addresses.RefusedURL as exc:
        raise InvalidWebhook("url", str(exc)) from None
    return url


def _info(row: repo.WebhookRow) -> WebhookInfo:
    return WebhookInfo(
        row.id, row.url, row.types, row.enabled, row.description, as_utc(row.created_at)
    )


def _checked_types(types: list[str] | None) -> list[str] | None:
    if types is None:
        return None
    unknown = [t for t in types if t not in TYPES]
    if unknown:
        raise InvalidWebhook("types", f"lists unknown types {unknown}; the types are {TYPES}")
    return sorted(set(types))


def _audited(info: WebhookInfo) -> dict[str, Any]:
    return {"url": info.url, "types": info.types, "enabled": info.enabled}


@retried
async def create_webhook(
    session: AsyncSession,
    *,
    actor: Actor,
    box: SecretBox,
    url: str,
    types: list[str] | None,
    description: str | None,
) -> tuple[WebhookInfo, str]:
    """Register an endpoint (the URL checked already); it receives what commits from now on."""
    secret = new_secret()
    webhook_id = "wh_" + secrets.token_hex(12)
    async with transaction(session):
        start = (await event_repo.counter(session)).position
        values = {
            "id": webhook_id,
            "url": url,
            "types": _checked_types(types),
            "enabled": True,
            "description": description,
            "created_at": now(),
            "secret": box.seal(secret),
            "cursor": start,
        }
        await repo.insert_webhook(session, **values)
        row = await repo.get(session, webhook_id=webhook_id)
        assert row is not None
        info = _info(row)
        await audit(
            session,
            actor=actor,
            action="webhook.create",
            resource=f"webhooks/{webhook_id}",
            after=_audited(info),
        )
    return info, secret


@retried
async def list_webhooks(session: AsyncSession) -> list[WebhookInfo]:
    async with session.begin():
        return [_info(row) for row in await repo.list_all(session)]


@retried
async def get_webhook(session: AsyncSession, *, webhook_id: str) -> WebhookInfo:
    async with session.begin():
        row = await repo.get(session, webhook_id=webhook_id)
    if row is None:
        raise WebhookNotFound(webhook_id)
    return _info(row)


@retried
async def change_webhook(
    session: AsyncSession, *, actor: Actor, webhook_id: str, changes: dict[str, Any]
) -> WebhookInfo:
    """PATCH: url (checked already), types, enabled, description."""
    async with transaction(session):
        row = await repo.get(session, webhook_id=webhook_id, lock=True)
        if row is None:
            raise WebhookNotFound(webhook_id)
        values = dict(changes)
        if "types" in values:
            values["types"] = _checked_types(values["types"])
        if values.get("enabled") and not row.enabled:
            # Back on: from now on, not the backlog of the time it was off.
            values["cursor"] = (await event_repo.counter(session)).position
            values["failing_since"] = None
        if values:
            await repo.update_webhook(session, webhook_id=webhook_id, **values)
        changed = await repo.get(session, webhook_id=webhook_id)
        assert changed is not None
        info = _info(changed)
        if info != _info(row):
            await audit(
                session,
                actor=actor,
                action="webhook.update",
                resource=f"webhooks/{webhook_id}",
                before=_audited(_info(row)),
                after=_audited(info),
            )
    return info


@retried
async def delete_webhook(session: AsyncSession, *, actor: Actor, webhook_id: str) -> None:
    async with transaction(session):
        if not await repo.delete_webhook(session, webhook_id=webhook_id):
            raise WebhookNotFound(webhook_id)
        await audit(
            session, actor=actor, action="webhook.delete", resource=f"webhooks/{webhook_id}"
        )


@dataclass(frozen=True)
class Rotation:
    secret: str
    # Until then deliveries carry a signature with the previous secret too.
    previous_valid_until: datetime | None


@retried
async def rotate_secret(
    session: AsyncSession, *, actor: Actor, box: SecretBox, webhook_id: str, overlap: timedelta
) -> Rotation:
    """A new signing secret, used from the next delivery on; the old one signs too for `overlap`.

    As Standard Webhooks (Svix) do: a receiver that has not deployed the new
    secret yet keeps accepting deliveries. A second rotation within the
    overlap ends the first one's previous secret: only the last two sign.
    """
    secret = new_secret()
    async with transaction(session):
        found = await repo.get(session, webhook_id=webhook_id, lock=True)
        if found is None:
            raise WebhookNotFound(webhook_id)
        previous = _resealed(box, found.secret) if overlap > timedelta(0) else None
        until = now() + overlap if previous is not None else None
        await repo.update_webhook(
            session,
            webhook_id=webhook_id,
            secret=box.seal(secret),
            previous_secret=previous,
            previous_secret_until=until,
        )
        await audit(
            session,
            actor=actor,
            action="webhook.rotate_secret",
            resource=f"webhooks/{webhook_id}",
        )
    return Rotation(secret, until)


def _resealed(box: SecretBox, stored: str) -> str | None:
    """The stored secret sealed as a new one would be; None if it cannot sign anyway."""
    try:
        return box.seal(box.open(stored))
    except SecretUnavailable:
        return None


async def forget_expired_secrets(session: AsyncSession) -> None:
    """Drop the previous secrets whose overlap has ended: a dump then holds none of them."""
    async with transaction(session):
        await repo.forget_previous_secrets(session, before=now())


@dataclass(frozen=True)
class DeliveryInfo:
    event_id: str
    state: str
    attempts: list[AttemptRow]
    next_attempt_at: datetime | None


@retried
async def list_deliveries(
    session: AsyncSession, *, webhook_id: str, limit: int
) -> list[DeliveryInfo]:
    async with session.begin():
        if await repo.get(session, webhook_id=webhook_id) is None:
            raise WebhookNotFound(webhook_id)
        found = await repo.deliveries(session, webhook_id=webhook_id, limit=limit)
    return [
        DeliveryInfo(
            row.event_id,
            row.state,
            [
                AttemptRow(a.delivery_id, as_utc(a.at), a.status_code, a.error, a.duration_ms)
                for a in attempts
            ],
            as_utc(row.next_attempt_at) if row.state == PENDING else None,
        )
        for row, attempts in found
    ]


@retried
async def retry_delivery(
    session: AsyncSession, *, actor: Actor, webhook_id: str, event_id: str
) -> None:
    """Send a delivery again, failed or delivered; it goes before the endpoint's later events."""
    async with transaction(session):
        if await repo.get(session, webhook_id=webhook_id) is None:
            raise WebhookNotFound(webhook_id)
        delivery = await repo.delivery_of(session, webhook_id=webhook_id, event_id=event_id)
        if delivery is None:
            raise DeliveryNotFound(webhook_id, event_id)
        moment = now()
        await repo.update_delivery(
            session,
            delivery_id=delivery.id,
            state=PENDING,
            next_attempt_at=moment,
            created_at=moment,
        )
        await audit(
            session,
            actor=actor,
            action="webhook.retry",
            resource=f"webhooks/{webhook_id}/deliveries/{event_id}",
        )


# --- the steps of delivering ------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    # Anything to queue or send now.
    due: bool
    # Any enabled endpoint: without one, a new event brings no work.
    endpoints: bool


@retried
async def has_work(session: AsyncSession) -> Work:
    """Whether there is anything to queue or send now; a read, so idle processes take no lock."""
    async with session.begin():
        endpoints = await repo.any_enabled(session)
        position = (await event_repo.counter(session)).position
        if await repo.behind(session, position=position):
            return Work(True, endpoints)
        return Work(bool(await repo.due_endpoints(session, now=now(), limit=1)), endpoints)


@retried
async def fan_out(session: AsyncSession) -> int:
    """Queue, for each enabled endpoint, the feed's events after its cursor that it wants.

    Endpoints another process is queueing for are skipped (SKIP LOCKED on
    PostgreSQL; SQLite lets one writer in at a time). The feed has no gaps,
    so following it by position queues each event exactly once.
    """
    queued = 0
    async with transaction(session):
        moment = now()
        for webhook in await repo.lock_for_fan_out(session):
            found = await repo.events_after(session, position=webhook.cursor, limit=_FAN_OUT_BATCH)
            if not found:
                continue
            wanted = [
                (position, event_id)
                for position, event_id, type_ in found
                if webhook.types is None or type_ in webhook.types
            ]
            await repo.queue_deliveries(session, webhook_id=webhook.id, events=wanted, at=moment)
            await repo.update_webhook(session, webhook_id=webhook.id, cursor=found[-1][0])
            queued += len(wanted)
    return queued


@dataclass(frozen=True)
class Claimed:
    webhook: repo.WebhookRow
    delivery: DeliveryRow
    event: EventRow | None


@retried
async def claim_next(
    session: AsyncSession, *, owner: str, lease: timedelta, skip: set[str]
) -> Claimed | None:
    """Hold one endpoint whose next delivery is due, and that delivery; None when none is."""
    async with transaction(session):
        moment = now()
        for webhook_id in await repo.due_endpoints(session, now=moment, limit=10):
            if webhook_id in skip:
                continue
            webhook = await repo.claim(
                session, webhook_id=webhook_id, now=moment, until=moment + lease, owner=owner
            )
            if webhook is None:
                continue
            delivery = await repo.head(session, webhook_id=webhook_id)
            if delivery is None or as_utc(delivery.next_attempt_at) > moment:
                await repo.release(session, webhook_id=webhook_id, owner=owner)
                continue
            event = await event_repo.by_position(session, position=delivery.event_position)
            return Claimed(webhook, delivery, event)
    return None


@dataclass(frozen=True)
class Outcome:
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Policy:
    retry_for: timedelta
    disable_after: timedelta
    backoff: float
    backoff_max: float

    def delay(self, attempts: int) -> timedelta:
        """Exponential, capped, with jitter: retries of many endpoints do not come in step."""
        ceiling = min(self.backoff * 2 ** min(attempts - 1, 40), self.backoff_max)
        return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311


@retried
async def finish(
    session: AsyncSession, *, claimed: Claimed, outcome: Outcome, owner: str, policy: Policy
) -> None:
    """Record the attempt, move the delivery on, and let go of the endpoint."""
    delivery, webhook = claimed.delivery, claimed.webhook
    async with transaction(session):
        await repo.add_attempt(
            session,
            delivery_id=delivery.id,
            at=outcome.at,
            status_code=outcome.status_code,
            error=outcome.error[:256] if outcome.error else None,
            duration_ms=outcome.duration_ms,
        )
        attempts = delivery.attempts + 1
        moment = now()
        if outcome.ok:
            await repo.update_delivery(
                session, delivery_id=delivery.id, state=DELIVERED, attempts=attempts
            )
            await repo.release(session, webhook_id=webhook.id, owner=owner, failing_since=None)
            return
        gave_up = claimed.event is None or moment - as_utc(delivery.created_at) >= policy.retry_for
        await repo.update_delivery(
            session,
            delivery_id=delivery.id,
            state=FAILED if gave_up else PENDING,
            attempts=attempts,
            next_attempt_at=moment + policy.delay(attempts),
        )
        failing_since = (
            as_utc(webhook.failing_since) if webhook.failing_since is not None else outcome.at
        )
        values: dict[str, Any] = {"failing_since": failing_since}
        if moment - failing_since >= policy.disable_after:
            values["enabled"] = False
            await audit(
                session,
                actor=_DELIVERY_ACTOR,
                action="webhook.disable",
                resource=f"webhooks/{webhook.id}",
                before={"enabled": True},
                after={"enabled": False, "failing_since": failing_since.isoformat()},
            )
        await repo.release(session, webhook_id=webhook.id, owner=owner, **values)
