"""The per-process sweep that keeps the time limit of requests in flight."""

from __future__ import annotations

import asyncio

import pytest

from app.api.deadlines import Deadlines

pytestmark = pytest.mark.anyio


async def _timed(deadlines: Deadlines, work: float) -> str:
    """Run `work` seconds as a request would; how it ended."""
    return "timed out" if await deadlines.run(asyncio.sleep(work)) else "done"


async def test_a_request_over_the_limit_is_cancelled_within_the_resolution() -> None:
    deadlines = Deadlines(0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _timed(deadlines, 5.0) == "timed out"
    elapsed = loop.time() - started
    assert 0.2 <= elapsed < 0.2 + deadlines.resolution + 0.2, elapsed
    # Taken back: the task is not left cancelling.
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0


async def test_requests_within_the_limit_are_left_alone() -> None:
    deadlines = Deadlines(0.4)
    results = await asyncio.gather(*(_timed(deadlines, 0.05 * i) for i in range(5)))
    assert results == ["done"] * 5
    # Only the slow one goes among fast ones.
    mixed = await asyncio.gather(_timed(deadlines, 0.05), _timed(deadlines, 3.0))
    assert list(mixed) == ["done", "timed out"]


async def test_a_cancellation_from_elsewhere_is_not_a_time_out() -> None:
    deadlines = Deadlines(10.0)
    request = asyncio.ensure_future(_timed(deadlines, 5.0))
    await asyncio.sleep(0.05)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request


async def test_the_sweep_stops_when_nothing_is_in_flight_and_starts_again() -> None:
    deadlines = Deadlines(0.2)
    assert await _timed(deadlines, 0.01) == "done"
    # The timer armed for that request runs once more, finds nothing and stops.
    await asyncio.sleep(deadlines.resolution * 2)
    assert deadlines._sweeping is None
    assert await _timed(deadlines, 1.0) == "timed out"


async def test_each_sweep_calls_its_hook_the_last_one_after_the_last_request() -> None:
    in_flight: list[int] = []
    deadlines = Deadlines(0.2, on_sweep=lambda: in_flight.append(len(deadlines._started)))
    assert await _timed(deadlines, 0.12) == "done"
    await asyncio.sleep(deadlines.resolution * 2)
    # Sweeps while it ran, and one more once it had ended; then none.
    assert in_flight[-1] == 0
    assert set(in_flight[:-1]) == {1}
    swept = len(in_flight)
    await asyncio.sleep(deadlines.resolution * 2)
    assert len(in_flight) == swept
