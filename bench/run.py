"""The benchmark driver: seed, serve, load with wrk, compare with the ceiling app, report.

    python -m bench.run --profile quick      # make bench-quick: < 2 minutes
    python -m bench.run --profile full       # make bench

For each database (SQLite, PostgreSQL) it seeds a generated directory
(bench/seed.py) straight into the database, starts the real server
(`python -m app serve --workers 2`) and drives it with wrk on loopback,
each run of ours between two runs of the ceiling app (bench/ceiling.py,
served with the same uvicorn options), so that a ratio is measured against
the ceiling's throughput at that very moment. Results go to
bench/results/<date>-<db>[-quick].json and a table in bench/README.md.

Every server it starts is stopped at the end (its whole process group), and
every load run is bounded in time. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app import cursors
from app.migrations import head_revision
from bench import statements
from bench.seed import (
    PUT_GROUP,
    Directory,
    generate,
    group_name,
    seed_postgres,
    seed_sqlite,
    userid,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
DATA = BENCH / ".data"
RESULTS = BENCH / "results"
README = BENCH / "README.md"

HOST = "127.0.0.1"
PG_SERVER = f"postgresql://postgres@{HOST}:5432"
PG_DATABASE = "grouped_users_bench"
PG_ADMIN_URL = f"postgresql+asyncpg://postgres@{HOST}:5432/postgres"
PG_URL = f"{PG_SERVER}/{PG_DATABASE}"

THREADS = 2
CONNECTIONS = 64
WORKERS = 2
PUT_MEMBERS = 10_000
MILLION = (1_000_000, 10_000)
MILLION_SCENARIOS = {"get_user", "group_small", "group_huge", "list_first", "list_deep"}
PACKAGES = (
    "fastapi", "starlette", "pydantic", "uvicorn", "uvloop", "httptools",
    "sqlalchemy", "aiosqlite", "asyncpg",
)  # fmt: skip

# The targets the bench reports against (docs/performance.md).
TARGET_RATIO = 0.6
TARGET_P99_MS = 20.0
TARGET_HUGE_GROUP_S = 0.5
TARGET_HUGE_GROUP_MEMBERS = 100_000
TARGET_PUT_S = 1.0
TARGET_MILLION_COST = 1.2
TARGET_DEEP_PAGE = 0.9
TARGET_RSS_MB = 150.0
# Writes on SQLite, with group commit (app.group_commit), at CONNECTIONS.
TARGET_POST_RPS = 1_500.0
TARGET_POST_P99_MS = 100.0
TARGET_MIX_RATIO = 0.4
TARGET_MIX_P99_MS = 50.0
# PostgreSQL, against the floor app (bench/floor.py) and by statement count.
TARGET_FLOOR_RATIO = 0.8
TARGET_FLOOR_P99 = 1.2
TARGET_PG_POST_RPS = 1_200.0
TARGET_PG_POST_P99_MS = 100.0
TARGET_PG_WRITE_STATEMENTS = 4


_STARTED = time.monotonic()


def say(message: str) -> None:
    """A progress line, with the seconds since the bench started."""
    print(f"[{time.monotonic() - _STARTED:5.0f}s] {message}", flush=True)


class BenchError(Exception):
    """Something the bench needs is missing or broke; the message says what."""


@dataclass(frozen=True)
class Profile:
    name: str
    users: int
    groups: int
    seconds: int
    # GET of the 100,000-member group: each answer is ~1 MB; 64 connections
    # would only measure a queue, the latency target is for one request.
    huge_connections: int
    timed_repeats: int
    million: bool


PROFILES = {
    "quick": Profile("quick", 20_000, 200, 2, 4, 3, million=False),
    "full": Profile("full", 100_000, 1_000, 10, 4, 5, million=True),
}


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    script: str
    path: str = "/"
    args: tuple[str, ...] = ()
    connections: int = CONNECTIONS


@dataclass
class Load:
    """One wrk run."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int]
    connections: int

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass
class ScenarioResult:
    key: str
    label: str
    load: Load
    ceiling_rps: float
    ratio: float
    # Each worker's peak RSS so far (VmHWM): the server runs for one database.
    worker_peak_rss_mb: list[float]
    # The machine's 1-minute load average after the run: other work on the
    # machine lowers every figure (the ratio less than absolute numbers).
    load_average: float


@dataclass
class FloorResult:
    """GET /users/{id} on PostgreSQL between two runs of the floor app (bench/floor.py)."""

    loads: list[Load]
    rps: float
    p99_ms: float
    floor_rps: float
    floor_p99_ms: float
    ratio: float
    p99_ratio: float


@dataclass
class Timed:
    """Sequential requests on one connection, timed from Python."""

    label: str
    seconds: list[float]
    median_s: float
    max_s: float


@dataclass
class Target:
    goal: str
    measured: str
    met: bool | None


@dataclass
class DatabaseRun:
    database: str
    users: int
    groups: int
    huge: dict[str, int]
    seed_seconds: float
    scenarios: list[ScenarioResult] = field(default_factory=list)
    ceilings: list[Load] = field(default_factory=list)
    timed: list[Timed] = field(default_factory=list)
    max_worker_peak_rss_mb: float = 0.0
    events: EventsCost | None = None
    # PostgreSQL: the floor app's runs of GET /users/{id}, around ours.
    floors: list[Load] = field(default_factory=list)
    floor: FloorResult | None = None
    # PostgreSQL: statements per write request, BEGIN/COMMIT left out (bench/statements.py).
    statements: dict[str, int] = field(default_factory=dict)

    def scenario(self, key: str) -> ScenarioResult | None:
        return next((found for found in self.scenarios if found.key == key), None)


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """A server process in a process group of its own, stopped with all its workers."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], ready: str) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.port = free_port()
        self.command += ["--port", str(self.port)]
        self.url = f"http://{HOST}:{self.port}"
        self.ready = ready
        self.log_path = DATA / "logs" / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.command,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise BenchError(f"{self.name} exited at start:\n{self.log_tail()}")
                try:
                    answer = client.get(self.url + self.ready)
                    if answer.status_code == 200 and len(self.workers()) >= WORKERS:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise BenchError(f"{self.name} was not ready in {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def workers(self) -> list[int]:
        """The uvicorn worker processes (multiprocessing children of the server)."""
        if self.process is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            parent = int(stat.rpartition(")")[2].split()[1])
            if parent == self.process.pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))
        return sorted(found)

    def worker_peak_rss_mb(self) -> list[float]:
        sizes = []
        for pid in self.workers():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    sizes.append(round(int(line.split()[1]) / 1024, 1))
        return sizes

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass
        if process is not None:
            # Workers left behind by a supervisor that died first.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


def server_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPED_USERS_")}
    env.pop("DATABASE_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env |= {f"GROUPED_USERS_{name.upper()}": value for name, value in settings.items()}
    return env


def migrate(database_url: str) -> None:
    env = server_env(database_url=database_url, log_level="warning")
    done = subprocess.run(
        [sys.executable, "-m", "app", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"db upgrade failed:\n{done.stdout}{done.stderr}")


# -- wrk ---------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """wrk, installed from Debian's packages when missing; BenchError when it can't be."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise BenchError("wrk is not installed and there is no apt-get to install it with")
    say("bench: wrk is missing; installing it: apt-get install -y wrk")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    steps = ([apt, "install", "-y", "wrk"], [apt, "update"], [apt, "install", "-y", "wrk"])
    output = ""
    for step in steps:
        done = subprocess.run(  # noqa: S603
            step, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        output = done.stdout[-2000:] + done.stderr[-2000:]
        if step[1] == "install" and done.returncode == 0 and shutil.which("wrk"):
            break
    found = shutil.which("wrk")
    if not found:
        raise BenchError(
            "could not install wrk with apt-get (are you root, with Debian's packages "
            f"reachable?). Install it by hand, then run again.\n{output}"
        )
    return found


def run_wrk(
    wrk: str, url: str, scenario: Scenario, seconds: float, *, connections: int | None = None
) -> Load:
    connections = connections or scenario.connections
    threads = min(THREADS, connections)
    command = [
        wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
        "--timeout", "10s", "--latency", "-s", scenario.script, url + scenario.path,
        "--", *scenario.args,
    ]  # fmt: skip
    done = subprocess.run(  # noqa: S603
        command, cwd=LUA, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    summary: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    latency = summary["latency_us"]
    elapsed = summary["duration_us"] / 1e6
    return Load(
        requests=summary["requests"],
        seconds=round(elapsed, 3),
        rps=round(summary["requests"] / elapsed, 1),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        mean_ms=round(latency["mean"] / 1000, 3),
        errors={k: v for k, v in summary["errors"].items() if v},
        connections=connections,
    )


# -- databases ---------------------------------------------------------------------------


class Directories:
    """Generated directories, made once per (users, groups) in this run."""

    def __init__(self) -> None:
        self._made: dict[tuple[int, int], Directory] = {}

    def get(self, users: int, groups: int) -> Directory:
        key = (users, groups)
        if key not in self._made:
            started = time.monotonic()
            self._made[key] = generate(users, groups)
            elapsed = time.monotonic() - started
            say(f"  generated {users:,} users, {groups:,} groups in {elapsed:.1f} s")
        return self._made[key]


def prepare_sqlite(directory: Directory, name: str = "run-sqlite") -> str:
    """A fresh copy of the seeded SQLite file; the seeded original is kept for the next run."""
    DATA.mkdir(parents=True, exist_ok=True)
    seeded = DATA / f"seed-{directory.key}-r{head_revision()}.db"
    if not seeded.exists():
        say(f"  seeding {seeded.relative_to(ROOT)} (kept for later runs)")
        partial = seeded.with_suffix(".partial")
        for stale in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
            stale.unlink(missing_ok=True)
        migrate(f"sqlite:///{partial}")
        seed_sqlite(partial, directory)
        partial.rename(seeded)
    run = DATA / f"{name}.db"
    for stale in (run, Path(f"{run}-wal"), Path(f"{run}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(seeded, run)
    return f"sqlite:///{run}"


async def _postgres_admin(statements: Sequence[str]) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def drop_postgres() -> None:
    asyncio.run(_postgres_admin([f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"]))


def prepare_postgres(directory: Directory) -> str:
    asyncio.run(
        _postgres_admin(
            [
                f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)",
                f"CREATE DATABASE {PG_DATABASE}",
            ]
        )
    )
    migrate(PG_URL)
    asyncio.run(seed_postgres(PG_URL.replace("postgresql://", "postgresql+asyncpg://"), directory))
    return PG_URL


async def _postgres_version() -> str:
    engine = create_async_engine(PG_ADMIN_URL)
    try:
        async with engine.connect() as connection:
            return str((await connection.execute(text("SHOW server_version"))).scalar_one())
    finally:
        await engine.dispose()


# -- the runs ----------------------------------------------------------------------------


class Bench:
    def __init__(self, profile: Profile, wrk: str, ceiling: Server, seconds: int) -> None:
        self.profile = profile
        self.wrk = wrk
        self.ceiling = ceiling
        self.seconds = seconds
        self.seeds = Directories()
        self.tag = format(int(time.time()) % 36**6, "x")

    def ceiling_run(self, users: int, seconds: float | None = None) -> Load:
        scenario = Scenario("ceiling", "ceiling", "get_user.lua", args=(str(users),))
        return run_wrk(self.wrk, self.ceiling.url, scenario, seconds or self.seconds)

    def series(
        self, run: DatabaseRun, server: Server, scenarios: Sequence[Scenario], users: int
    ) -> None:
        """ceiling, ours, ceiling, ours, ..., ceiling: each ratio to the two around it."""
        run_wrk(self.wrk, self.ceiling.url, scenarios[0], 1)
        run_wrk(self.wrk, server.url, scenarios[0], 1)
        before = self.ceiling_run(users)
        run.ceilings.append(before)
        for scenario in scenarios:
            ours = run_wrk(self.wrk, server.url, scenario, self.seconds)
            rss = server.worker_peak_rss_mb()
            after = self.ceiling_run(users)
            run.ceilings.append(after)
            ceiling_rps = (before.rps + after.rps) / 2
            result = ScenarioResult(
                scenario.key,
                scenario.label,
                ours,
                ceiling_rps,
                ours.rps / ceiling_rps,
                rss,
                round(os.getloadavg()[0], 2),
            )
            run.scenarios.append(result)
            run.max_worker_peak_rss_mb = max([run.max_worker_peak_rss_mb, *rss])
            errors = f"  ERRORS {ours.errors}" if ours.errors else ""
            say(
                f"  {scenario.label:<44} {ours.rps:>9,.0f} req/s  {result.ratio:5.2f}x ceiling "
                f"({ceiling_rps:,.0f})  p50 {ours.p50_ms:6.1f} ms  p99 {ours.p99_ms:7.1f} ms"
                f"  peak rss {max(rss, default=0):.0f} MB  load {result.load_average:.1f}{errors}",
            )
            before = after

    def scenarios(self, directory: Directory, run_tag: str) -> list[Scenario]:
        users, groups = directory.users, directory.groups
        deep = userid(int(users * 0.9))
        huge_name, huge_size = next(iter(directory.huge.items()))
        per_group = sum(1 for m in directory.memberships if m[0] <= groups) / groups
        return [
            Scenario("get_user", "GET /users/{id}", "get_user.lua", args=(str(users),)),
            Scenario(
                "group_small",
                f"GET /groups/{{small}} (~{per_group:,.0f} members)",
                "get_group.lua",
                args=(str(groups),),
            ),
            Scenario(
                "group_huge",
                f"GET /groups/{huge_name} ({huge_size:,} members, "
                f"{self.profile.huge_connections} conns)",
                "fixed.lua",
                path=f"/groups/{huge_name}",
                connections=self.profile.huge_connections,
            ),
            Scenario(
                "list_first", "GET /users?limit=100 (page 1)", "fixed.lua", "/users?limit=100"
            ),
            Scenario(
                "list_deep",
                f"GET /users?limit=100 (deep, after {deep})",
                "fixed.lua",
                f"/users?limit=100&cursor={cursors.encode('users', deep)}",
            ),
            Scenario(
                "post_users",
                "POST /users/{new} (sustained)",
                "post_users.lua",
                args=(f"{run_tag}p", str(groups)),
            ),
            Scenario(
                "mix",
                "90/10 GET /users/{id} / POST+PATCH",
                "mix.lua",
                args=(str(users), str(groups), f"{run_tag}m", "10"),
            ),
        ]

    def timed(self, run: DatabaseRun, server: Server, directory: Directory) -> None:
        repeats = self.profile.timed_repeats
        huge_name, huge_size = next(iter(directory.huge.items()))
        users = directory.users
        first = [userid(n) for n in range(min(PUT_MEMBERS, users))]
        second = [userid(n) for n in range(max(0, users - PUT_MEMBERS), users)]
        with httpx.Client(base_url=server.url, timeout=60.0) as client:

            def measure(label: str, call: Any, check: Any) -> None:
                call()  # warm-up, not counted
                times = []
                for number in range(repeats):
                    started = time.perf_counter()
                    response = call(number)
                    times.append(time.perf_counter() - started)
                    check(response)
                found = Timed(label, times, statistics.median(times), max(times))
                run.timed.append(found)
                say(
                    f"  {label:<44} median {found.median_s * 1000:7.1f} ms  "
                    f"max {found.max_s * 1000:7.1f} ms  ({repeats} sequential)",
                )

            def check_members(expected: int) -> Any:
                def check(response: httpx.Response) -> None:
                    if response.status_code != 200 or len(response.json()) != expected:
                        raise BenchError(
                            f"unexpected answer {response.status_code}: {response.text[:300]}"
                        )

                return check

            measure(
                f"GET /groups/{huge_name} ({huge_size:,} members)",
                lambda _n=0: client.get(f"/groups/{huge_name}"),
                check_members(huge_size),
            )
            members = len(first)
            # The warm-up fills the empty group; each timed PUT then replaces
            # every member (all of one set out, all of the other in).
            measure(
                f"PUT /groups/{PUT_GROUP} ({members:,} members)",
                lambda n=-1: client.put(
                    f"/groups/{PUT_GROUP}", json=second if n % 2 == 0 else first
                ),
                check_members(members),
            )

    def events_cost(self, directory: Directory, scenarios: Sequence[Scenario]) -> EventsCost:
        """The writes with events on and off, side by side; then reading the feed."""
        say("  events on vs off (GROUPED_USERS_EVENTS), alternating servers")
        cost = EventsCost()
        servers = {
            state: Server(
                f"grouped-users-sqlite-events-{state}",
                [sys.executable, "-m", "app", "serve", "--workers", str(WORKERS), "--host", HOST],
                server_env(
                    database_url=prepare_sqlite(directory, f"run-sqlite-events-{state}"),
                    auth="disabled",
                    log_level="warning",
                    events="true" if state == "on" else "false",
                ),
                ready="/healthz",
            )
            for state in ("on", "off")
        }
        try:
            for server in servers.values():
                server.start()
            if httpx.get(f"{servers['off'].url}/events", timeout=10).status_code != 404:
                raise BenchError("events are not off on the events-off server")
            for scenario in scenarios:
                if scenario.key not in ("post_users", "mix"):
                    continue
                rates: dict[str, list[float]] = {"on": [], "off": []}
                for number in range(EVENTS_ROUNDS):
                    order = ("on", "off") if number % 2 == 0 else ("off", "on")
                    for state in order:
                        # Unique userids per run: each run's own tag.
                        args = list(scenario.args)
                        at = 2 if scenario.key == "mix" else 0
                        args[at] = f"{args[at]}{state}{number}"
                        run = replace(scenario, args=tuple(args))
                        rates[state].append(
                            run_wrk(self.wrk, servers[state].url, run, self.seconds).rps
                        )
                cost.writes[scenario.key] = (scenario.label, rates["on"], rates["off"])
                say(
                    f"  {scenario.label:<44} on {rates['on']}  off {rates['off']} req/s  "
                    f"cost {cost.cost(scenario.key):+.1%}"
                )
            for state, server in servers.items():
                scratch = DatabaseRun("sqlite", directory.users, directory.groups, {}, 0.0)
                self.timed(scratch, server, directory)
                put = next(t for t in scratch.timed if t.label.startswith("PUT "))
                if state == "on":
                    cost.put_on = put
                else:
                    cost.put_off = put
            events, pages, seconds = _read_feed(servers["on"].url)
            cost.feed_events, cost.feed_pages, cost.feed_seconds = events, pages, seconds
            say(
                f"  GET /events, pages of {FEED_PAGE:,}: {events:,} events in {seconds:.2f} s, "
                f"{events / seconds:,.0f} events/s"
            )
        finally:
            for server in servers.values():
                server.stop()
        return cost

    def database(self, database: str, users: int, groups: int, *, full: bool = True) -> DatabaseRun:
        directory = self.seeds.get(users, groups)
        started = time.monotonic()
        url = prepare_sqlite(directory) if database == "sqlite" else prepare_postgres(directory)
        seed_seconds = time.monotonic() - started
        say(f"  {database} database ready in {seed_seconds:.1f} s")
        run = DatabaseRun(database, users, groups, directory.huge, round(seed_seconds, 1))
        server = Server(
            f"grouped-users-{database}-{users}",
            [sys.executable, "-m", "app", "serve", "--workers", str(WORKERS), "--host", HOST],
            server_env(database_url=url, auth="disabled", log_level="warning"),
            ready="/healthz",
        )
        try:
            server.start()
            check = httpx.get(f"{server.url}/users/{userid(0)}", timeout=10)
            if check.status_code != 200:
                raise BenchError(f"GET /users/{userid(0)}: {check.status_code} {check.text[:300]}")
            run_tag = f"{self.tag}{database[0]}{users}"
            scenarios = self.scenarios(directory, run_tag)
            if not full:
                # The million-user variant: the reads, no writes, no timed runs.
                scenarios = [s for s in scenarios if s.key in MILLION_SCENARIOS]
            self.series(run, server, scenarios, users)
            if database == "postgresql":
                self.against_floor(run, server, url, users)
                run.statements = statements.run(
                    url, userid=f"s{run_tag}", groups=[group_name(0), group_name(1)]
                )
                say(f"  statements per request: {run.statements}")
            if full:
                self.timed(run, server, directory)
        finally:
            server.stop()
        if full and database == "sqlite":
            run.events = self.events_cost(directory, scenarios)
        return run

    def against_floor(self, run: DatabaseRun, server: Server, url: str, users: int) -> None:
        """floor, ours, floor, ours, floor on GET /users/{id}: ours as a ratio to the floor."""
        floor = Server(
            "floor",
            [
                sys.executable, "-m", "bench.floor", "--workers", str(WORKERS), "--host", HOST,
                "--database-url", url,
            ],
            server_env(),
            ready=f"/users/{userid(0)}",
        )  # fmt: skip
        scenario = Scenario("get_user", "GET /users/{id}", "get_user.lua", args=(str(users),))
        try:
            floor.start()
            run_wrk(self.wrk, floor.url, scenario, 1)
            run.floors.append(run_wrk(self.wrk, floor.url, scenario, self.seconds))
            loads = []
            for _ in range(2):
                loads.append(run_wrk(self.wrk, server.url, scenario, self.seconds))
                run.floors.append(run_wrk(self.wrk, floor.url, scenario, self.seconds))
        finally:
            floor.stop()
        rps = statistics.mean(load.rps for load in loads)
        p99 = statistics.mean(load.p99_ms for load in loads)
        floor_rps = statistics.mean(load.rps for load in run.floors)
        floor_p99 = statistics.mean(load.p99_ms for load in run.floors)
        found = FloorResult(loads, rps, p99, floor_rps, floor_p99, rps / floor_rps, p99 / floor_p99)
        run.floor = found
        say(
            f"  {'GET /users/{id} against the floor':<44} {rps:>9,.0f} req/s  "
            f"{found.ratio:5.2f}x floor ({floor_rps:,.0f})  p99 {p99:7.1f} ms "
            f"({found.p99_ratio:.2f}x the floor's {floor_p99:.1f} ms)"
        )


# -- change events: writes with events on and off, reading the feed --------------------

TARGET_EVENTS_COST = 0.10
TARGET_FEED_EVENTS_S = 20_000.0
FEED_PAGE = 1000
# Rounds of (on, off) per write scenario; the order flips each round, so
# that drift of the machine's load falls on both sides alike.
EVENTS_ROUNDS = 2


@dataclass
class EventsCost:
    """The same writes on two servers from copies of one seed: events on, and off.

    "Off" is the documented setting GROUPED_USERS_EVENTS=false (writers get
    plain sessions, so nothing is queued or written): the production code
    minus exactly the event writing, not a bench-only path.
    """

    # scenario key -> (label, [req/s with events on], [req/s with events off])
    writes: dict[str, tuple[str, list[float], list[float]]] = field(default_factory=dict)
    put_on: Timed | None = None
    put_off: Timed | None = None
    feed_events: int = 0
    feed_pages: int = 0
    feed_seconds: float = 0.0

    def cost(self, key: str) -> float:
        _, on, off = self.writes[key]
        return 1 - statistics.mean(on) / statistics.mean(off)


def _read_feed(url: str) -> tuple[int, int, float]:
    """Every event from the oldest kept, in pages of FEED_PAGE: (events, pages, seconds)."""
    count = pages = 0
    after: str | None = None
    with httpx.Client(base_url=url, timeout=60.0) as client:
        started = time.perf_counter()
        while True:
            params = {"limit": str(FEED_PAGE)} | ({"after": after} if after else {})
            answer = client.get("/events", params=params)
            if answer.status_code != 200:
                raise BenchError(f"GET /events: {answer.status_code} {answer.text[:300]}")
            page = answer.json()
            pages += 1
            if not page["items"]:
                return count, pages, time.perf_counter() - started
            count += len(page["items"])
            after = page["next_cursor"]


def _events_targets(run: DatabaseRun) -> list[Target]:
    cost = run.events
    if cost is None:
        return []
    found = []
    for key, (label, on, off) in cost.writes.items():
        found.append(
            Target(
                f"{label}: events cost <= {TARGET_EVENTS_COST:.0%} of the throughput without",
                f"{statistics.mean(on):,.0f} vs {statistics.mean(off):,.0f} req/s: "
                f"{cost.cost(key):+.1%} cost",
                cost.cost(key) <= TARGET_EVENTS_COST,
            )
        )
    if cost.feed_seconds:
        rate = cost.feed_events / cost.feed_seconds
        found.append(
            Target(
                f"reading the feed >= {TARGET_FEED_EVENTS_S:,.0f} events/s "
                f"(pages of {FEED_PAGE:,})",
                f"{rate:,.0f} events/s ({cost.feed_events:,} events, {cost.feed_pages} pages)",
                rate >= TARGET_FEED_EVENTS_S,
            )
        )
    if cost.put_on is not None and cost.put_off is not None:
        found.append(
            Target(
                f"PUT /groups/{{g}} with {PUT_MEMBERS:,} members and its events < "
                f"{TARGET_PUT_S:g} s (slowest)",
                f"{cost.put_on.max_s:.3f} s (events off: {cost.put_off.max_s:.3f} s)",
                cost.put_on.max_s < TARGET_PUT_S,
            )
        )
    return found


def _events_lines(run: DatabaseRun) -> list[str]:
    cost = run.events
    if cost is None:
        return []
    lines = [
        "",
        "| events on vs off (alternating runs) | on req/s | off req/s | cost |",
        "|---|--:|--:|--:|",
    ]
    for key, (label, on, off) in cost.writes.items():
        lines.append(
            f"| {label} | {' / '.join(f'{x:,.0f}' for x in on)} | "
            f"{' / '.join(f'{x:,.0f}' for x in off)} | {cost.cost(key):+.1%} |"
        )
    return lines


# -- targets and reports -----------------------------------------------------------------


def _ratio_target(run: DatabaseRun, note: str) -> list[Target]:
    found = run.scenario("get_user")
    if found is None:
        return []
    return [
        Target(
            f"GET /users/{{id}} >= {TARGET_RATIO}x ceiling{note}",
            f"{found.ratio:.2f}x",
            found.ratio >= TARGET_RATIO,
        ),
        Target(
            f"GET /users/{{id}} p99 < {TARGET_P99_MS:g} ms{note}",
            f"{found.load.p99_ms:.1f} ms",
            found.load.p99_ms < TARGET_P99_MS,
        ),
    ]


def _write_targets(run: DatabaseRun, note: str) -> list[Target]:
    found: list[Target] = []
    post, mix = run.scenario("post_users"), run.scenario("mix")
    if post is not None:
        found.append(
            Target(
                f"POST /users/{{new}} sustained >= {TARGET_POST_RPS:,.0f} req/s with p99 < "
                f"{TARGET_POST_P99_MS:g} ms{note}",
                f"{post.load.rps:,.0f} req/s, p99 {post.load.p99_ms:.1f} ms",
                post.load.rps >= TARGET_POST_RPS and post.load.p99_ms < TARGET_POST_P99_MS,
            )
        )
    if mix is not None:
        found.append(
            Target(
                f"90/10 mix >= {TARGET_MIX_RATIO}x ceiling with p99 < "
                f"{TARGET_MIX_P99_MS:g} ms{note}",
                f"{mix.ratio:.2f}x, p99 {mix.load.p99_ms:.1f} ms",
                mix.ratio >= TARGET_MIX_RATIO and mix.load.p99_ms < TARGET_MIX_P99_MS,
            )
        )
    return found


def _postgres_targets(run: DatabaseRun) -> list[Target]:
    found = []
    if run.floor is not None:
        floor = run.floor
        found += [
            Target(
                f"PostgreSQL GET /users/{{id}} >= {TARGET_FLOOR_RATIO}x the floor app",
                f"{floor.ratio:.2f}x ({floor.rps:,.0f} vs {floor.floor_rps:,.0f} req/s)",
                floor.ratio >= TARGET_FLOOR_RATIO,
            ),
            Target(
                f"PostgreSQL GET /users/{{id}} p99 <= {TARGET_FLOOR_P99}x the floor's",
                f"{floor.p99_ratio:.2f}x ({floor.p99_ms:.1f} vs {floor.floor_p99_ms:.1f} ms)",
                floor.p99_ratio <= TARGET_FLOOR_P99,
            ),
        ]
    post = run.scenario("post_users")
    if post is not None:
        found.append(
            Target(
                f"PostgreSQL POST /users/{{new}} >= {TARGET_PG_POST_RPS:,.0f} req/s, "
                f"p99 < {TARGET_PG_POST_P99_MS:g} ms",
                f"{post.load.rps:,.0f} req/s, p99 {post.load.p99_ms:.1f} ms",
                post.load.rps >= TARGET_PG_POST_RPS and post.load.p99_ms < TARGET_PG_POST_P99_MS,
            )
        )
    for label, count in run.statements.items():
        found.append(
            Target(
                f"PostgreSQL {label} <= {TARGET_PG_WRITE_STATEMENTS} statements + BEGIN/COMMIT",
                f"{count} statements",
                count <= TARGET_PG_WRITE_STATEMENTS if label != "POST /users/{new}" else None,
            )
        )
    return found


def targets(run: DatabaseRun, million: DatabaseRun | None) -> list[Target]:
    note = "" if run.database == "sqlite" else " (the target is for SQLite)"
    found = _ratio_target(run, note) + _write_targets(run, note)
    if run.database == "postgresql":
        found += _postgres_targets(run)
    first, deep = run.scenario("list_first"), run.scenario("list_deep")
    if first and deep:
        # Each against its own ceiling runs, so that drift between the two cancels.
        share = deep.ratio / first.ratio
        found.append(
            Target(
                "deep page of GET /users costs the same as page 1 (>= 90 % of its ratio)",
                f"{share:.0%}",
                share >= TARGET_DEEP_PAGE,
            )
        )
    for timed in run.timed:
        if timed.label.startswith("GET /groups/"):
            members = max(run.huge.values())
            enough = members >= TARGET_HUGE_GROUP_MEMBERS
            found.append(
                Target(
                    f"GET /groups/{{g}} with {TARGET_HUGE_GROUP_MEMBERS:,} members < "
                    f"{TARGET_HUGE_GROUP_S:g} s (slowest of the timed requests)",
                    f"{timed.max_s:.3f} s" + ("" if enough else f" at {members:,} members"),
                    timed.max_s < TARGET_HUGE_GROUP_S if enough else None,
                )
            )
        if timed.label.startswith("PUT /groups/"):
            found.append(
                Target(
                    f"PUT /groups/{{g}} with {PUT_MEMBERS:,} members < {TARGET_PUT_S:g} s "
                    "(slowest)",
                    f"{timed.max_s:.3f} s",
                    timed.max_s < TARGET_PUT_S,
                )
            )
    found += _events_targets(run)
    found.append(
        Target(
            f"RSS per worker < {TARGET_RSS_MB:g} MB (the target is at 1,000,000 users)",
            f"peak {run.max_worker_peak_rss_mb:.0f} MB at {run.users:,} users",
            None,
        )
    )
    if million is not None:
        ours, big = run.scenario("get_user"), million.scenario("get_user")
        if ours and big:
            cost = ours.ratio / big.ratio
            found.append(
                Target(
                    f"GET /users/{{id}} at {million.users:,} users costs within 20 % of "
                    f"{run.users:,} (ratio to ceiling)",
                    f"{big.ratio:.2f}x vs {ours.ratio:.2f}x: {cost - 1:+.0%} cost",
                    cost <= TARGET_MILLION_COST,
                )
            )
        first, deep = million.scenario("list_first"), million.scenario("list_deep")
        if first and deep:
            share = deep.ratio / first.ratio
            found.append(
                Target(
                    f"deep page costs the same as page 1 at {million.users:,} users",
                    f"{share:.0%}",
                    share >= TARGET_DEEP_PAGE,
                )
            )
        found.append(
            Target(
                f"RSS < {TARGET_RSS_MB:g} MB per worker serving {million.users:,} users",
                f"peak {million.max_worker_peak_rss_mb:.0f} MB",
                million.max_worker_peak_rss_mb < TARGET_RSS_MB,
            )
        )
    return found


def machine(databases: Sequence[str], wrk: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    wrk_version = (
        subprocess.run(  # noqa: S603
            [wrk, "-v"], capture_output=True, text=True, timeout=10, check=False
        )
        .stdout.split("[")[0]
        .strip()
    )
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "sqlite": sqlite3.sqlite_version,
        "wrk": wrk_version,
        "commit": _commit(),
    }
    if "postgresql" in databases:
        info["postgresql"] = asyncio.run(_postgres_version())
    return info


def _commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(  # noqa: S603
            ["git", *args],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "app", "alembic")
    return commit + (" + uncommitted changes in app/" if dirty else "")


def _met(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "-"}[met]


def _ratio(value: float) -> str:
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def markdown(
    profile: Profile,
    stamp: str,
    info: dict[str, Any],
    runs: Sequence[tuple[DatabaseRun, DatabaseRun | None, list[Target]]],
) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    lines = [
        f"Run `{profile.name}` at {stamp} (UTC), commit {info['commit']}: wrk {THREADS} threads, "
        f"{CONNECTIONS} connections, {profile.seconds} s a run; server and ceiling app with "
        f"{WORKERS} uvicorn workers each.",
        "",
        f"Machine: {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, Linux "
        f"{info['kernel']}; Python {info['python']}; {packages}; SQLite {info['sqlite']}"
        + (f"; PostgreSQL {info['postgresql']}" if "postgresql" in info else "")
        + f"; {info['wrk']}.",
        "",
    ]
    for run, million, found in runs:
        title = names.get(run.database, run.database)
        lines += [
            f"#### {title}: {run.users:,} users, {run.groups:,} groups "
            f"(database ready in {run.seed_seconds:g} s)",
            "",
            "| scenario | req/s | ceiling req/s | ratio | p50 ms | p99 ms | errors | load |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for extra in (run, million):
            if extra is None:
                continue
            suffix = "" if extra is run else f" at {extra.users:,} users"
            for result in extra.scenarios:
                load = result.load
                lines.append(
                    f"| {result.label}{suffix} | {load.rps:,.0f} | {result.ceiling_rps:,.0f} | "
                    f"{_ratio(result.ratio)} | {_ms(load.p50_ms)} | {_ms(load.p99_ms)} | "
                    f"{load.error_count or ''} | {result.load_average:.1f} |"
                )
        if run.timed:
            lines += ["", "| timed, sequential | median ms | max ms |", "|---|--:|--:|"]
            lines += [
                f"| {t.label} | {_ms(t.median_s * 1000)} | {_ms(t.max_s * 1000)} |"
                for t in run.timed
            ]
        lines += _events_lines(run)
        if run.floor is not None:
            floor = run.floor
            lines += [
                "",
                "| against the floor app (bench/floor.py) | req/s | floor req/s | ratio "
                "| p99 ms | floor p99 ms | p99 ratio |",
                "|---|--:|--:|--:|--:|--:|--:|",
                f"| GET /users/{{id}} | {floor.rps:,.0f} | {floor.floor_rps:,.0f} | "
                f"{_ratio(floor.ratio)} | {_ms(floor.p99_ms)} | {_ms(floor.floor_p99_ms)} | "
                f"{floor.p99_ratio:.2f} |",
            ]
        lines += ["", "| target | measured | |", "|---|---|---|"]
        lines += [f"| {t.goal} | {t.measured} | {_met(t.met)} |" for t in found]
        lines.append("")
    return "\n".join(lines)


def update_readme(profile: Profile, block: str) -> None:
    start, end = f"<!-- bench:{profile.name}:start -->", f"<!-- bench:{profile.name}:end -->"
    current = README.read_text() if README.exists() else "# Benchmarks\n"
    replacement = f"{start}\n{block}\n{end}"
    if start in current and end in current:
        head, _, rest = current.partition(start)
        _, _, tail = rest.partition(end)
        current = head + replacement + tail
    else:
        current = current.rstrip("\n") + f"\n\n### Latest `{profile.name}` run\n\n{replacement}\n"
    README.write_text(current)


# -- main --------------------------------------------------------------------------------


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument(
        "--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument("--seconds", type=int, help="seconds per wrk run (profile's default)")
    parser.add_argument("--users", type=int, help="users to seed (profile's default)")
    parser.add_argument("--groups", type=int, help="small groups to seed (profile's default)")
    parser.add_argument(
        "--no-million", action="store_true", help="skip the 1,000,000-user SQLite variant"
    )
    parser.add_argument("--no-readme", action="store_true", help="leave bench/README.md alone")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    databases = [name.strip() for name in args.db.split(",") if name.strip()]
    if unknown := set(databases) - {"sqlite", "postgresql"}:
        parser.error(f"unknown database: {', '.join(sorted(unknown))}")
    users = args.users or profile.users
    groups = args.groups or profile.groups
    seconds = args.seconds or profile.seconds

    signal.signal(signal.SIGTERM, _stop_on_signal)
    started = time.monotonic()
    ceiling: Server | None = None
    used_postgres = False
    try:
        wrk = ensure_wrk()
        info = machine(databases, wrk)
        ceiling = Server(
            "ceiling",
            [sys.executable, "-m", "bench.ceiling", "--workers", str(WORKERS), "--host", HOST],
            server_env(),
            ready="/users/ceiling",
        )
        ceiling.start()
        bench = Bench(profile, wrk, ceiling, seconds)
        stamp = datetime.now(UTC)
        runs: list[tuple[DatabaseRun, DatabaseRun | None, list[Target]]] = []
        for database in databases:
            say(f"{database}: {users:,} users, {groups:,} groups")
            used_postgres |= database == "postgresql"
            run = bench.database(database, users, groups)
            million = None
            if database == "sqlite" and profile.million and not args.no_million:
                say(f"{database}: {MILLION[0]:,} users, {MILLION[1]:,} groups")
                million = bench.database(database, *MILLION, full=False)
            found = targets(run, million)
            runs.append((run, million, found))
            write_results(profile, stamp, info, run, million, found, seconds)
        if not args.no_readme:
            block = markdown(profile, stamp.strftime("%Y-%m-%d %H:%M"), info, runs)
            update_readme(profile, block)
            say(f"bench: table written to {README.relative_to(ROOT)}")
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if ceiling is not None:
            ceiling.stop()
        if used_postgres:
            try:
                drop_postgres()
            except Exception as exc:  # reported; the run's results stand
                print(f"bench: could not drop {PG_DATABASE}: {exc}", file=sys.stderr)
    say(f"bench: done in {time.monotonic() - started:.0f} s")
    return 0


def write_results(
    profile: Profile,
    stamp: datetime,
    info: dict[str, Any],
    run: DatabaseRun,
    million: DatabaseRun | None,
    found: list[Target],
    seconds: int,
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if profile.name == "full" else f"-{profile.name}"
    path = RESULTS / f"{stamp.date().isoformat()}-{run.database}{suffix}.json"
    document = {
        "at": stamp.isoformat(timespec="seconds"),
        "profile": profile.name,
        "database": run.database,
        "load": {"threads": THREADS, "connections": CONNECTIONS, "seconds": seconds},
        "workers": WORKERS,
        "machine": info,
        "run": asdict(run),
        "million": asdict(million) if million else None,
        "targets": [asdict(t) for t in found],
    }
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    say(f"bench: results in {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
