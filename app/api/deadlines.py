"""The time limit of requests in flight, kept by one timer per process.

`asyncio.timeout` arms a timer and a context manager per request: ~4.4 us
on uvloop, measured in a loop, and more amid a request (a point lookup
costs ~90 us in all). Here a request only notes when it began (a dict
entry) and one timer, armed while requests are in flight, sweeps them every
`resolution` seconds and cancels those over the limit. A request is thus
abandoned between `seconds` and `seconds + resolution` after it began.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Task = asyncio.Task[Any]


class Deadlines:
    def __init__(self, seconds: float, *, on_sweep: Callable[[], None] | None = None) -> None:
        self.seconds = seconds
        # Called at every sweep, the last one after the last request ended.
        self._on_sweep = on_sweep
        self.resolution = min(1.0, seconds / 4)
        self._started: dict[Task, float] = {}
        self._expired: set[Task] = set()
        self._sweeping: asyncio.AbstractEventLoop | None = None

    async def run(self, request: Awaitable[None]) -> bool:
        """Await the request; True when it ran out of time and was cancelled for it.

        A cancellation from elsewhere (shutdown, a client gone) goes on up.
        """
        task = self._enter()
        timed_out = False
        try:
            try:
                await request
            finally:
                timed_out = self._leave(task)
        except asyncio.CancelledError:
            if not timed_out or task.cancelling():
                raise
            return True
        return False

    def _enter(self) -> Task:
        """Start the clock of the request running in the current task."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a request runs in a task")
        loop = task.get_loop()
        self._started[task] = loop.time()
        if self._sweeping is not loop:
            self._sweeping = loop
            loop.call_later(self.resolution, self._sweep, loop)
        return task

    def _leave(self, task: Task) -> bool:
        """Stop the clock; True when the request ran out of time (and was cancelled for it)."""
        del self._started[task]
        if task not in self._expired:
            return False
        self._expired.discard(task)
        # The cancellation was ours: take it back, as asyncio.timeout does.
        task.uncancel()
        return True

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, started in self._started.items():
            if now - started >= self.seconds and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        if self._on_sweep is not None:
            self._on_sweep()
        if self._started and not loop.is_closed():
            loop.call_later(self.resolution, self._sweep, loop)
        else:
            self._sweeping = None
