"""CPU time per `POST /users/{new}` with change events on and off, in-process.

wrk's write throughput on a shared machine moves twofold between two runs
of the same server; the CPU a write costs does not. This serves the app
in-process (httpx's ASGI transport, no sockets) on fresh copies of the
seeded quick-profile SQLite file, sends sequential `POST /users/{new}` with
2 groups each, and divides `time.process_time()` (every thread of the
process: the COMMIT's thread too) by their number. On and off alternate,
the order flipped each round, so that drift falls on both; the mean and
the median of the rounds are printed (on a shared machine one round can
stray by half).

    .venv/bin/python -m bench.events_cpu                 # 3 rounds of 600 POSTs
    .venv/bin/python -m bench.events_cpu --profile on    # cProfile of one "on" run
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
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


async def _posts(settings: Settings, count: int, warmup: int, tag: str) -> float:
    """CPU milliseconds per POST over `count` POSTs, after `warmup` of them."""
    database = create_database(settings)
    app = create_app(settings, database=database)
    rng = random.Random(7)  # noqa: S311 - which groups, not secrets
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
        ):

            async def post(n: int) -> None:
                first = rng.randrange(GROUPS)
                second = (first + rng.randrange(1, GROUPS)) % GROUPS
                body = {
                    "first_name": "Bench",
                    "last_name": f"Writer {n}",
                    "groups": [group_name(first), group_name(second)],
                }
                answer = await client.post(f"/users/w{tag}-{n}", json=body)
                if answer.status_code != 201:
                    raise SystemExit(f"POST answered {answer.status_code}: {answer.text[:300]}")

            for n in range(warmup):
                await post(n)
            started = time.process_time()
            for n in range(warmup, warmup + count):
                await post(n)
            return (time.process_time() - started) * 1000 / count
    finally:
        await database.dispose()


def _run(settings: Settings, count: int, warmup: int, tag: str) -> float:
    ms = asyncio.run(_posts(settings, count, warmup, tag))
    # The app's long-poll bell is bound to the loop just closed: let it go
    # before the next run commits and rings it.
    gc.collect()
    return ms


def _settings(url: str, events: bool) -> Settings:
    return Settings(
        database_url=url,
        events=events,
        auth="disabled",
        webhook_deliver=False,
        log_level="warning",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--profile", choices=("on", "off"), help="profile one run in this state instead"
    )
    args = parser.parse_args(argv)
    directory = Directories().get(USERS, GROUPS)
    if args.profile:
        url = prepare_sqlite(directory, f"events-cpu-{args.profile}")
        profiler = cProfile.Profile()
        profiler.enable()
        ms = _run(_settings(url, args.profile == "on"), args.posts, args.warmup, "p")
        profiler.disable()
        print(f"events {args.profile}: {ms:.2f} ms CPU per POST (profiled)")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
        return 0
    figures: dict[str, list[float]] = {"on": [], "off": []}
    for round_ in range(args.rounds):
        order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
        for state in order:
            url = prepare_sqlite(directory, f"events-cpu-{state}")
            ms = _run(_settings(url, state == "on"), args.posts, args.warmup, f"r{round_}")
            figures[state].append(ms)
            print(f"round {round_ + 1}, events {state}: {ms:.2f} ms CPU per POST", flush=True)
    for name, middle in (("mean", statistics.mean), ("median", statistics.median)):
        on, off = middle(figures["on"]), middle(figures["off"])
        print(f"{name}: on {on:.2f} ms, off {off:.2f} ms: events cost {on / off - 1:+.0%} CPU")
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
