"""The delivering loop of a server process: queue, claim, POST, record, again.

Each process runs a few senders; an endpoint is held by one sender at a
time (a lease in its row, claimed with SKIP LOCKED on PostgreSQL), so its
deliveries go out one at a time in feed order while other endpoints are
served alongside. A process killed mid-delivery leaves a lease that runs
out: another process (or this one, restarted) sends that delivery again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from datetime import datetime, timedelta

import httpx

from app.clock import as_utc, now
from app.db import Database
from app.repository.events import Bell
from app.repository.webhooks import WebhookRow
from app.service import webhooks
from app.service.events import purge
from app.settings import Settings
from app.webhooks import addresses
from app.webhooks.signing import SecretBox, SecretUnavailable, signatures

log = logging.getLogger("grouped_users.webhooks")

# Response bodies are read this far at most, and then dropped.
MAX_RESPONSE_BYTES = 64 * 1024
SENDERS = 4
IDLE_SECONDS = 1.0
PURGE_EVERY_SECONDS = 3600.0


def event_body(claimed: webhooks.Claimed) -> bytes:
    event = claimed.event
    assert event is not None
    document = {
        "id": event.id,
        "type": event.type,
        "occurred_at": as_utc(event.occurred_at).isoformat().replace("+00:00", "Z"),
        "actor": event.actor,
        "request_id": event.request_id,
        "data": event.data,
    }
    return json.dumps(document, separators=(",", ":")).encode()


class Deliverer:
    def __init__(self, database: Database, settings: Settings, bell: Bell | None = None) -> None:
        self._database = database
        self._settings = settings
        self._bell = bell
        key = settings.secret_key
        self.box = SecretBox(key.get_secret_value() if key is not None else None)
        self._owner = uuid.uuid4().hex
        # Longer than a POST may take; a process killed mid-delivery holds it no longer.
        self._lease = timedelta(seconds=settings.webhook_timeout_seconds + 5)
        self._policy = webhooks.Policy(
            retry_for=settings.webhook_retry_for,
            disable_after=settings.webhook_disable_after,
            backoff=settings.webhook_backoff_seconds,
            backoff_max=settings.webhook_backoff_max_seconds,
        )
        self._held: set[str] = set()
        # Whether the last look found an enabled endpoint (see _idle).
        self._endpoints = True
        self._tasks: list[asyncio.Task[None]] = []
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=settings.webhook_timeout_seconds,
            headers={"User-Agent": "grouped-users-webhooks"},
            trust_env=False,
        )

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._send_loop(), name=f"webhook-sender-{n}")
            for n in range(SENDERS)
        ]
        self._tasks.append(asyncio.create_task(self._purge_loop(), name="event-purge"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()

    async def run_once(self) -> bool:
        """Queue what is new, then make one delivery; False when there was none to make."""
        work = await webhooks.has_work(self._database.reader())
        self._endpoints = work.endpoints
        if not work.due:
            return False
        async with self._database.writer() as session:
            await webhooks.fan_out(session)
        async with self._database.writer() as session:
            claimed = await webhooks.claim_next(
                session, owner=self._owner, lease=self._lease, skip=self._held
            )
        if claimed is None:
            return False
        self._held.add(claimed.webhook.id)
        try:
            outcome = await self._post(claimed)
            async with self._database.writer() as session:
                await webhooks.finish(
                    session,
                    claimed=claimed,
                    outcome=outcome,
                    owner=self._owner,
                    policy=self._policy,
                )
        finally:
            self._held.discard(claimed.webhook.id)
        return True

    async def _send_loop(self) -> None:
        while True:
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("webhook delivery pass failed")
                busy = False
            if not busy:
                await self._idle()

    async def _idle(self) -> None:
        # With no endpoint to send to, a committed event is no work: waking
        # every sender at each commit would only cost the writers' CPU. A new
        # endpoint is seen at the next look, within IDLE_SECONDS.
        if self._bell is None or not self._endpoints:
            await asyncio.sleep(IDLE_SECONDS)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bell.ticket().wait(), IDLE_SECONDS)

    async def _purge_loop(self) -> None:
        while True:
            try:
                async with self._database.writer() as session:
                    await purge(session, retention=self._settings.event_retention)
                    await webhooks.forget_expired_secrets(session)
            except Exception:
                log.exception("event purge failed")
            await asyncio.sleep(PURGE_EVERY_SECONDS)

    def _secrets(self, webhook: WebhookRow, at: datetime) -> list[str]:
        """The secrets that sign now: the current one, and the previous during its overlap."""
        current = [self.box.open(webhook.secret)]
        until = webhook.previous_secret_until
        if webhook.previous_secret is None or until is None or as_utc(until) <= at:
            return current
        try:
            return [*current, self.box.open(webhook.previous_secret)]
        except SecretUnavailable:
            # The current one signs all the same.
            return current

    async def _post(self, claimed: webhooks.Claimed) -> webhooks.Outcome:
        started, at = time.monotonic(), now()

        def outcome(status: int | None, error: str | None) -> webhooks.Outcome:
            return webhooks.Outcome(at, status, error, int((time.monotonic() - started) * 1000))

        if claimed.event is None:
            return outcome(None, "the event is no longer kept (retention)")
        url = claimed.webhook.url
        try:
            # Again at each delivery: what the name resolves to can change.
            await addresses.check(
                url,
                allow_http=self._settings.webhook_allow_http,
                allow_private=self._settings.webhook_allow_private,
            )
            secrets = self._secrets(claimed.webhook, at)
        except (addresses.RefusedURL, SecretUnavailable) as exc:
            return outcome(
                None,
                f"refused: the URL {exc}" if isinstance(exc, addresses.RefusedURL) else str(exc),
            )
        body = event_body(claimed)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": claimed.event.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signatures(
                secrets, message_id=claimed.event.id, timestamp=timestamp, body=body
            ),
        }
        try:
            async with self._client.stream("POST", url, content=body, headers=headers) as response:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= MAX_RESPONSE_BYTES:
                        break
                return outcome(response.status_code, None)
        except httpx.HTTPError as exc:
            return outcome(None, f"{type(exc).__name__}: {exc}"[:256])
