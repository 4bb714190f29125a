"""Webhooks: registration, SSRF refusals, signed deliveries to a real receiver, retries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.api import create_app
from app.db import Database
from app.models import Webhook
from app.service import webhooks
from app.settings import Settings
from app.webhooks.worker import Deliverer
from tests.events.feed import cursor, read_all
from tests.events.receiver import Receiver, receiving
from tests.support.helpers import assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio

FAST = {
    "webhook_allow_http": True,
    "webhook_allow_private": True,
    "webhook_backoff_seconds": 0.05,
    "webhook_backoff_max_seconds": 0.2,
}


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    # No secret overlap but where a test asks for one.
    return settings.model_copy(update=FAST | {"webhook_secret_overlap_hours": 0})


@pytest.fixture
async def admin(hook_settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(hook_settings, database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


async def register(client: httpx.AsyncClient, receiver: Receiver, **extra: Any) -> dict[str, Any]:
    response = await client.post("/webhooks", json={"url": receiver.url, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    receiver.secret = body["secret"]
    return body


async def deliver_until(
    deliverer: Deliverer, done: Callable[[], bool], within: float = 20.0
) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "deliveries did not arrive in time"
        if not await deliverer.run_once():
            await asyncio.sleep(0.05)


async def test_registration_checks_and_shapes(
    client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    # Default settings: https only, public addresses only.
    for url, reason in [
        ("http://hooks.example.com/x", "https"),
        ("https://127.0.0.1/x", "private"),
        ("https://localhost:8443/x", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://10.1.2.3/x", "private"),
        ("https://[::1]/x", "private"),
        ("https://[fd00::1]/x", "private"),
        ("https://user:pw@hooks.example.com/x", "credentials"),
        ("ftp://x/", "https"),
        ("not a url", "https"),
    ]:
        body = assert_problem(
            await client.post("/webhooks", json={"url": url}), 422, "invalid_webhook"
        )
        assert reason in body["detail"], (url, body["detail"])
    assert_problem(
        await admin.post("/webhooks", json={"url": "http://x/", "types": ["user.exploded"]}),
        422,
        "invalid_webhook",
    )
    assert_problem(await admin.post("/webhooks", json={"uri": "http://x/"}), 422, "invalid_webhook")

    created = (
        await admin.post(
            "/webhooks",
            json={"url": "http://127.0.0.1:9/h", "types": ["user.created"], "description": "d"},
        )
    ).json()
    assert created["secret"].startswith("whsec_")
    assert set(created) == {
        "id",
        "url",
        "types",
        "enabled",
        "description",
        "created_at",
        "secret",
    }
    hook = f"/webhooks/{created['id']}"
    listed = (await admin.get("/webhooks")).json()
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    changed = await admin.patch(hook, json={"enabled": False, "types": None})
    assert changed.status_code == 200
    assert (changed.json()["enabled"], changed.json()["types"]) == (False, None)
    assert_problem(await admin.patch(hook, json={"url": None}), 422, "invalid_webhook")
    rotated = (await admin.post(f"{hook}/rotate-secret")).json()["secret"]
    assert rotated.startswith("whsec_")
    assert rotated != created["secret"]
    assert (await admin.get(f"{hook}/deliveries")).json() == []
    assert (await admin.delete(hook)).status_code == 204
    assert_problem(await admin.get(hook), 404, "webhook_not_found")
    assert_problem(await admin.delete(hook), 404, "webhook_not_found")
    assert_problem(await admin.post(f"{hook}/deliveries/evt_x/retry"), 404, "webhook_not_found")
    # Admin actions are audited.
    actions = [e["action"] for e in (await admin.get("/audit")).json()["items"]]
    assert actions[:4] == [
        "webhook.delete",
        "webhook.rotate_secret",
        "webhook.update",
        "webhook.create",
    ]


async def test_signed_deliveries_in_feed_order_and_rotation(
    admin: httpx.AsyncClient, database: Database, hook_settings: Settings
) -> None:
    deliverer = Deliverer(database, hook_settings)
    try:
        with receiving() as receiver, receiving() as groups_receiver:
            hook = await register(admin, receiver)
            only_groups = await register(admin, groups_receiver, types=["group.created"])
            await create_group(admin, "team")
            await create_user(admin, "ann", ["team"])
            feed, _ = await read_all(admin, None)
            await deliver_until(
                deliverer,
                lambda: len(receiver.ids()) == len(feed) and len(groups_receiver.ids()) == 1,
            )
            assert receiver.bad_signatures == groups_receiver.bad_signatures == 0
            # Each endpoint got its events in feed order, as GET /events shows them.
            assert receiver.events() == feed
            assert groups_receiver.ids() == [feed[0]["id"]]
            deliveries = (await admin.get(f"/webhooks/{hook['id']}/deliveries")).json()
            assert [d["event_id"] for d in deliveries] == [e["id"] for e in reversed(feed)]
            for delivery in deliveries:
                assert delivery["state"] == "delivered"
                assert [a["status_code"] for a in delivery["attempts"]] == [204]

            # After a rotation without an overlap only the new secret verifies.
            await admin.delete(f"/webhooks/{only_groups['id']}")
            rotated = (await admin.post(f"/webhooks/{hook['id']}/rotate-secret")).json()
            assert rotated["previous_valid_until"] is None
            await create_user(admin, "bob")
            await deliver_until(deliverer, lambda: receiver.bad_signatures > 0)
            receiver.secret = rotated["secret"]
            await deliver_until(deliverer, lambda: len(receiver.ids()) == len(feed) + 1)
            assert receiver.events()[-1]["data"]["userid"] == "bob"
    finally:
        await deliverer.stop()


async def test_receiver_down_then_up_gets_everything_in_order(
    admin: httpx.AsyncClient, database: Database, hook_settings: Settings
) -> None:
    deliverer = Deliverer(database, hook_settings)
    try:
        with receiving() as receiver:
            hook = await register(admin, receiver)
            receiver.status = 503
            start = await cursor(admin)
            for userid in ("ann", "bob", "cy"):
                await create_user(admin, userid)
            # Failing: retried (with backoff), and the later events wait their turn.
            deadline = time.monotonic() + 20
            while True:
                deliveries = (await admin.get(f"/webhooks/{hook['id']}/deliveries")).json()
                if deliveries and len(deliveries[-1]["attempts"]) >= 3:
                    break
                assert time.monotonic() < deadline
                if not await deliverer.run_once():
                    await asyncio.sleep(0.05)
            assert [len(d["attempts"]) for d in deliveries[:2]] == [0, 0]
            assert {a["status_code"] for a in deliveries[-1]["attempts"]} == {503}
            assert deliveries[-1]["state"] == "pending"
            receiver.status = 200
            await deliver_until(deliverer, lambda: len(receiver.ids()) == 3)
            feed, _ = await read_all(admin, start)
            assert receiver.ids() == [e["id"] for e in feed]
    finally:
        await deliverer.stop()


async def test_give_up_retry_and_disable(
    admin: httpx.AsyncClient, database: Database, hook_settings: Settings
) -> None:
    impatient = hook_settings.model_copy(
        update={
            "webhook_retry_for": timedelta(seconds=0.3),
            "webhook_disable_after": timedelta(seconds=1.5),
        }
    )
    deliverer = Deliverer(database, impatient)
    persistent = Deliverer(
        database, impatient.model_copy(update={"webhook_retry_for": timedelta(days=3)})
    )
    try:
        with receiving() as receiver:
            hook = await register(admin, receiver)
            receiver.status = 500
            await create_group(admin, "team")
            deliveries_url = f"/webhooks/{hook['id']}/deliveries"

            async def state() -> str:
                found = (await admin.get(deliveries_url)).json()
                return str(found[0]["state"]) if found else "none yet"

            deadline = time.monotonic() + 20
            while await state() != "failed":
                assert time.monotonic() < deadline
                if not await deliverer.run_once():
                    await asyncio.sleep(0.05)
            event_id = (await admin.get(deliveries_url)).json()[0]["event_id"]
            receiver.status = 200
            response = await admin.post(f"{deliveries_url}/{event_id}/retry")
            assert response.status_code == 202
            assert_problem(
                await admin.post(f"{deliveries_url}/evt_nope/retry"), 404, "delivery_not_found"
            )
            await deliver_until(deliverer, lambda: receiver.ids() == [event_id])

            # Failing for longer than disable_after, retried all along: disabled, and audited.
            receiver.status = 500
            await create_group(admin, "second")
            while (await admin.get(f"/webhooks/{hook['id']}")).json()["enabled"]:
                assert time.monotonic() < deadline + 20
                if not await persistent.run_once():
                    await asyncio.sleep(0.05)
            entries = (await admin.get("/audit", params={"actor": "webhook-delivery"})).json()
            assert [e["action"] for e in entries["items"]] == ["webhook.disable"]
    finally:
        await deliverer.stop()
        await persistent.stop()


async def test_secret_is_encrypted_with_the_secret_key(
    admin: httpx.AsyncClient, database: Database, hook_settings: Settings
) -> None:
    keyed = hook_settings.model_copy(
        update={"secret_key": SecretStr("correct horse battery staple")}
    )
    app = create_app(keyed, database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    deliverer = Deliverer(database, keyed)
    unkeyed = Deliverer(database, hook_settings)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            with receiving() as receiver:
                hook = await register(client, receiver)
                async with database.reader() as session, session.begin():
                    stored = await session.scalar(select(Webhook.secret))
                assert stored is not None
                assert stored.startswith("fernet:")
                assert receiver.secret.removeprefix("whsec_") not in stored
                await create_group(client, "team")
                # Without the key the secret cannot be read: the attempt fails, and says why.
                assert await unkeyed.run_once()
                deliveries = (await client.get(f"/webhooks/{hook['id']}/deliveries")).json()
                assert "secret key" in deliveries[0]["attempts"][0]["error"]
                await deliver_until(deliverer, lambda: len(receiver.ids()) == 1)
    finally:
        await deliverer.stop()
        await unkeyed.stop()


async def test_rotation_overlap_signs_with_both_secrets_until_it_ends(
    database: Database, hook_settings: Settings
) -> None:
    overlapping = hook_settings.model_copy(
        update={"webhook_secret_overlap_hours": 24, "secret_key": SecretStr("a key")}
    )
    app = create_app(overlapping, database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    deliverer = Deliverer(database, overlapping)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            with receiving() as receiver:
                hook = await register(client, receiver)
                old = receiver.secret
                response = await client.post(f"/webhooks/{hook['id']}/rotate-secret")
                assert response.status_code == 200, response.text
                rotated = response.json()
                new = rotated["secret"]
                until = datetime.fromisoformat(rotated["previous_valid_until"])
                left = until - datetime.now(UTC)
                assert timedelta(hours=23) < left <= timedelta(hours=24)
                async with database.reader() as session, session.begin():
                    previous = await session.scalar(select(Webhook.previous_secret))
                assert previous is not None
                assert previous.startswith("fernet:")
                assert old.removeprefix("whsec_") not in previous

                # During the overlap: the receiver still on the old secret accepts,
                # and so would one on the new (two signatures, either verifies).
                await create_group(client, "during")
                await deliver_until(deliverer, lambda: len(receiver.ids()) == 1)
                assert receiver.bad_signatures == 0
                body, headers = receiver.raw[-1]
                assert len(headers["webhook-signature"].split()) == 2
                for secret in (old, new):
                    assert StandardWebhook(secret).verify(body, headers)["id"] == receiver.ids()[0]

                # After it: only the new secret verifies.
                async with database.writer() as session, session.begin():
                    await session.execute(
                        update(Webhook).values(
                            previous_secret_until=datetime.now(UTC) - timedelta(seconds=1)
                        )
                    )
                await create_group(client, "after")
                await deliver_until(deliverer, lambda: receiver.bad_signatures > 0)
                receiver.secret = new
                await deliver_until(deliverer, lambda: len(receiver.ids()) == 2)
                body, headers = receiver.raw[-1]
                assert len(headers["webhook-signature"].split()) == 1
                with pytest.raises(WebhookVerificationError):
                    StandardWebhook(old).verify(body, headers)
                assert StandardWebhook(new).verify(body, headers)["id"] == receiver.ids()[1]
                # And the expired previous secret is dropped from the database.
                async with database.writer() as session:
                    await webhooks.forget_expired_secrets(session)
                async with database.reader() as session, session.begin():
                    row = (
                        await session.execute(
                            select(Webhook.previous_secret, Webhook.previous_secret_until)
                        )
                    ).one()
                assert tuple(row) == (None, None)
    finally:
        await deliverer.stop()
