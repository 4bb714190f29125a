"""GROUPED_USERS_EVENTS=false: writes record no events, and the feed says it is off.

The audit log is not part of the feed: it is kept all the same.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from app.api import create_app
from app.db import Database, create_database
from app.models import AuditEntry, Event
from app.settings import Settings
from tests.support.helpers import assert_problem, create_group, create_user

pytestmark = pytest.mark.anyio


async def test_events_off(settings: Settings, database: Database) -> None:
    # The fixture's database (events on) has emptied the tables; this one is the server's.
    off = settings.model_copy(update={"events": False})
    quiet = create_database(off)
    transport = httpx.ASGITransport(app=create_app(off, database=quiet))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            await create_group(client, "team")
            await create_user(client, "ann", ["team"])
            assert (await client.delete("/groups/team")).status_code == 204
            assert_problem(await client.get("/events"), 404, "events_off")
            assert_problem(await client.get("/events/cursor"), 404, "events_off")
    finally:
        await quiet.dispose()
    async with database.reader() as session, session.begin():
        assert await session.scalar(select(func.count()).select_from(Event)) == 0
        actions = (await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
    assert actions == ["group.create", "user.create", "group.delete"]
