"""The notifier's bell: rung by commits while it serves, forgotten when it stops."""

from __future__ import annotations

import asyncio

import pytest

from app.notifier import EventNotifier
from app.repository.events import BELLS, ring_all

pytestmark = pytest.mark.anyio


async def test_a_stopped_notifier_is_no_longer_rung() -> None:
    notifier = EventNotifier("sqlite+aiosqlite:///unused.db")
    await notifier.start()
    assert notifier.bell in BELLS
    ticket = notifier.bell.ticket()
    ring_all()
    await _settle()
    assert ticket.is_set()

    await notifier.stop()
    assert notifier.bell not in BELLS
    ticket = notifier.bell.ticket()
    ring_all()
    await _settle()
    assert not ticket.is_set()


async def _settle() -> None:
    # ring_all schedules the ring on the bell's loop (call_soon_threadsafe).
    await asyncio.sleep(0)
