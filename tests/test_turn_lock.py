"""TurnLock: one holder at a time, first come first served, queued turns back to back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import pytest

from app.turn_lock import TurnLock

pytestmark = pytest.mark.anyio

T = TypeVar("T")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Lock(Protocol):
    async def acquire(self) -> object: ...
    def release(self) -> None: ...


class _Passes:
    """Counts the passes of the event loop: a callback that schedules itself again each pass."""

    def __init__(self) -> None:
        self.count = 0
        self._stopped = False
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        if not self._stopped:
            self.count += 1
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._stopped = True


async def _queue_turns(lock: _Lock, n: int, turn: Callable[[int], Awaitable[None]]) -> list[int]:
    """n tasks queue behind a holder; the holder lets go; the order they held it in."""
    order: list[int] = []

    async def take(number: int) -> None:
        await lock.acquire()
        try:
            order.append(number)
            await turn(number)
        finally:
            lock.release()

    await lock.acquire()
    tasks = [asyncio.create_task(take(number)) for number in range(n)]
    await asyncio.sleep(0)  # every one of them is waiting now
    lock.release()
    await asyncio.gather(*tasks)
    return order


async def _passes_of_turns(lock: _Lock) -> set[int]:
    """The passes of the loop in which five queued turns that never suspend ran."""
    passes = _Passes()
    ran_in: list[int] = []

    async def instant(_number: int) -> None:
        ran_in.append(passes.count)

    assert await _queue_turns(lock, 5, instant) == [0, 1, 2, 3, 4]
    passes.stop()
    return set(ran_in)


async def test_queued_turns_that_do_not_suspend_run_in_one_pass_of_the_loop() -> None:
    # asyncio.Lock: each waiter runs a pass after the one before it let go.
    assert len(await _passes_of_turns(asyncio.Lock())) == 5
    assert len(await _passes_of_turns(TurnLock())) == 1


async def test_a_turn_that_suspends_keeps_the_others_out_and_the_order_holds() -> None:
    lock = TurnLock()
    inside = 0
    most = 0

    async def suspending(_number: int) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        inside -= 1

    assert await _queue_turns(lock, 6, suspending) == [0, 1, 2, 3, 4, 5]
    assert most == 1
    assert not lock.locked()
    assert lock.waiting == 0


async def _take(lock: TurnLock, order: list[T], item: T) -> None:
    """Hold the lock and note `item` while holding it."""
    async with lock:
        order.append(item)


async def test_a_newcomer_waits_behind_those_woken_before_it() -> None:
    lock = TurnLock()
    order: list[str] = []
    await lock.acquire()
    first = asyncio.create_task(_take(lock, order, "queued"))
    await asyncio.sleep(0)
    lock.release()  # "queued" is woken, has not run yet
    late = asyncio.create_task(_take(lock, order, "newcomer"))
    await asyncio.gather(first, late)
    assert order == ["queued", "newcomer"]


@pytest.mark.parametrize("woken", [False, True], ids=["while-waiting", "after-being-woken"])
async def test_a_waiter_given_up_leaves_the_lock_to_the_next(woken: bool) -> None:
    lock = TurnLock()
    order: list[int] = []
    await lock.acquire()
    tasks = [asyncio.create_task(_take(lock, order, number)) for number in range(3)]
    await asyncio.sleep(0)
    if woken:
        lock.release()  # the first is woken as the next holder, and given up before it runs
        tasks[0].cancel()
    else:
        tasks[0].cancel()
        await asyncio.sleep(0)
        lock.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert order == [1, 2]
    assert not lock.locked()
    assert lock.waiting == 0


async def test_releasing_a_lock_not_held_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        TurnLock().release()
