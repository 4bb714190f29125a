"""CPU time per `POST /users/{new}` with change events on and off, in-process.

wrk's write throughput on a shared machine moves twofold between two runs
of the same server; the CPU a write costs moves less. This serves two apps
in one process (httpx's ASGI transport, no sockets), one with events on and
one with GROUPED_USERS_EVENTS=false, each on a fresh copy of the seeded
quick-profile SQLite file, and sends them sequential `POST /users/{new}`
with 2 groups each, in alternating blocks (the order flipped every pair),
so that whatever else the machine runs falls on both alike. The CPU of a
block is `time.process_time()` (every thread of the process: the COMMIT's
thread too) over its POSTs. Printed: each state's mean per POST over all
its blocks, and the median of the on/off ratios of the block pairs.

    .venv/bin/python -m bench.events_cpu                  # 1,800 POSTs each
    .venv/bin/python -m bench.events_cpu --profile on     # cProfile of one state's POSTs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import pstats
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from app.api import create_app
from app.db import create_database
from app.settings import Settings
from bench.run import Directories, prepare_sqlite
from bench.seed import group_name

USERS, GROUPS = 20_000, 200
STATES = ("on", "off")


class Writer:
    """Sends one app sequential POSTs of new users, each in 2 random groups."""

    def __init__(self, client: httpx.AsyncClient, seed: int) -> None:
        self._client = client
        self._rng = random.Random(seed)  # noqa: S311 - which groups, not secrets
        self._sent = 0

    async def posts(self, count: int) -> None:
        for _ in range(count):
            self._sent += 1
            first = self._rng.randrange(GROUPS)
            second = (first + self._rng.randrange(1, GROUPS)) % GROUPS
            body = {
                "first_name": "Bench",
                "last_name": f"Writer {self._sent}",
                "groups": [group_name(first), group_name(second)],
            }
            answer = await self._client.post(f"/users/wcpu-{self._sent}", json=body)
            if answer.status_code != 201:
                raise SystemExit(f"POST answered {answer.status_code}: {answer.text[:300]}")


def _settings(url: str, events: bool) -> Settings:
    return Settings(
        database_url=url, events=events, auth="disabled", webhook_deliver=False, log_level="warning"
    )


async def _writers(stack: contextlib.AsyncExitStack) -> dict[str, Writer]:
    directory = Directories().get(USERS, GROUPS)
    writers = {}
    for state in STATES:
        settings = _settings(prepare_sqlite(directory, f"events-cpu-{state}"), state == "on")
        database = create_database(settings)
        stack.push_async_callback(database.dispose)
        app = create_app(settings, database=database)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        )
        writers[state] = Writer(await stack.enter_async_context(client), seed=7)
    return writers


async def measure(blocks: int, block: int, warmup: int) -> dict[str, list[float]]:
    """CPU milliseconds per POST of each block, by state."""
    async with contextlib.AsyncExitStack() as stack:
        writers = await _writers(stack)
        for writer in writers.values():
            await writer.posts(warmup)
        per_post: dict[str, list[float]] = {state: [] for state in STATES}
        for number in range(blocks):
            for state in STATES if number % 2 == 0 else reversed(STATES):
                started = time.process_time()
                await writers[state].posts(block)
                per_post[state].append((time.process_time() - started) * 1000 / block)
        return per_post


async def profile(state: str, count: int, warmup: int) -> pstats.Stats:
    async with contextlib.AsyncExitStack() as stack:
        writer = (await _writers(stack))[state]
        await writer.posts(warmup)
        profiler = cProfile.Profile()
        profiler.enable()
        await writer.posts(count)
        profiler.disable()
        return pstats.Stats(profiler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=36, help="blocks per state")
    parser.add_argument("--block", type=int, default=50, help="POSTs per block")
    parser.add_argument("--warmup", type=int, default=100, help="POSTs per state first")
    parser.add_argument("--profile", choices=STATES, help="profile this state's POSTs instead")
    args = parser.parse_args(argv)
    if args.profile:
        stats = asyncio.run(profile(args.profile, args.blocks * args.block, args.warmup))
        stats.sort_stats("cumulative").print_stats(60)
        return 0
    per_post = asyncio.run(measure(args.blocks, args.block, args.warmup))
    on, off = (statistics.mean(per_post[state]) for state in STATES)
    ratios = [a / b for a, b in zip(per_post["on"], per_post["off"], strict=True)]
    posts = args.blocks * args.block
    print(f"{posts:,} POSTs each, blocks of {args.block}, alternating")
    print(f"CPU per POST: events on {on:.2f} ms, off {off:.2f} ms: {on / off - 1:+.1%}")
    print(f"median of the block pairs: {statistics.median(ratios) - 1:+.1%}")
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
