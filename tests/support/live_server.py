"""The real server as a child process, for the operations, reliability and soak tests.

`python -m app serve` of this tree runs in a process group of its own on a
free loopback port, with authentication disabled (loopback only) unless a
test asks otherwise. Its stdout and stderr go to two files, so that a test
can read the JSON log lines on stderr. Stopping is SIGTERM, then SIGKILL to
the whole group (workers included), always bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.settings import Settings
from tests.support.sockets import LOOPBACK, free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 25.0
KILL_TIMEOUT = 10.0


def server_environment(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without our settings, plus the database and `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GROUPED_USERS_")
        and key not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")
    }
    env["GROUPED_USERS_DATABASE_URL"] = database_url
    # Local development mode, as `make run`: loopback only, no tokens.
    env["GROUPED_USERS_AUTH"] = "disabled"
    env["PYTHONUNBUFFERED"] = "1"
    return env | (extra or {})


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr_lines(self) -> list[str]:
        return self.stderr.read_text(errors="replace").splitlines()

    def log_tail(self, lines: int = 60) -> str:
        out = self.stdout.read_text(errors="replace").splitlines()[-lines:]
        err = self.stderr_lines()[-lines:]
        return "--- server stderr ---\n" + "\n".join(err) + "\n--- stdout ---\n" + "\n".join(out)

    def log_problems(self, lines: int = 60) -> str:
        """The server's log without the info-level request lines: warnings, errors, tracebacks."""
        kept = [
            line
            for line in self.stderr_lines()
            if not (line.startswith("{") and '"level": "info"' in line)
        ]
        return "--- server stderr (no info lines) ---\n" + "\n".join(kept[-lines:])

    def kill(self) -> None:
        """SIGKILL to the whole process group (also when the leader is gone), then reap."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=KILL_TIMEOUT)


def launch(
    database_url: str,
    directory: Path,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    name: str = "server",
) -> LiveServer:
    """Start `python -m app serve` on a free port; returns at once (see wait_until_up)."""
    port = free_port()
    command = [sys.executable, "-m", "app", "serve", "--host", LOOPBACK, "--port", str(port)]
    command += ["--workers", str(workers)]
    stdout, stderr = directory / f"{name}.out", directory / f"{name}.err"
    # serve --workers N makes its Prometheus directory with mkdtemp: keep it in ours.
    env = {"TMPDIR": str(directory)} | (env or {})
    with stdout.open("ab") as out, stderr.open("ab") as err:
        process = subprocess.Popen(
            command,
            env=server_environment(database_url, env),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    return LiveServer(process, port, stdout, stderr)


class ServerFailed(AssertionError):
    """The server did not start, or did not stop, as it should."""


STARTED = "Application startup complete."


async def wait_until_up(
    server: LiveServer, within: float = START_TIMEOUT, *, workers: int = 1
) -> None:
    """Until every worker has started and /healthz answers 200; fails on exit or timeout.

    One answer proves only one worker: on a busy machine the others may still
    be importing, and the first takes every connection until they listen.
    """
    deadline = time.monotonic() + within
    while sum(STARTED in line for line in server.stderr_lines()) < workers:
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise ServerFailed(f"not all {workers} workers started:\n{server.log_tail()}")
        await asyncio.sleep(0.1)
    async with httpx.AsyncClient(base_url=server.url, timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                raise ServerFailed(
                    f"server exited with {server.process.returncode}:\n{server.log_tail()}"
                )
            with suppress(httpx.TransportError):
                headers = {"X-Request-ID": "startup-probe"}
                if (await client.get("/healthz", headers=headers)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise ServerFailed(f"server did not answer in {within} s:\n{server.log_tail()}")
            await asyncio.sleep(0.1)


async def wait_for_exit(server: LiveServer, within: float) -> int | None:
    """The exit status once the server process ends, or None after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.05)
    return server.process.poll()


async def terminate(server: LiveServer, within: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM (a graceful stop), then SIGKILL to the group; the SIGTERM exit status or None."""
    code = server.process.poll()
    if code is None:
        with suppress(ProcessLookupError):
            server.process.send_signal(signal.SIGTERM)
        code = await wait_for_exit(server, within)
    server.kill()
    return code


@asynccontextmanager
async def serving(
    database_url: str,
    directory: Path,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    name: str = "server",
) -> AsyncIterator[LiveServer]:
    """A running server until the block ends; then stopped, and killed if need be."""
    server = launch(database_url, directory, workers=workers, env=env, name=name)
    try:
        await wait_until_up(server, workers=workers)
        yield server
    finally:
        await terminate(server)


def graceful_exit(code: int | None) -> bool:
    """After SIGTERM uvicorn re-raises it (-15) with one worker; its supervisor exits 0."""
    return code in (0, -signal.SIGTERM)


# --- PostgreSQL databases of one test ---------------------------------------------------------


def async_url(url: str) -> str:
    """The URL with the async driver the app uses (sqlite:// -> sqlite+aiosqlite://)."""
    return Settings(database_url=url).database_url


def postgres_server() -> str:
    """The PostgreSQL server of the tests ($TEST_POSTGRES_URL, async driver).

    Without one a test is skipped, except under CI, where a PostgreSQL test
    that does not run is a failure.
    """
    server = os.environ.get("TEST_POSTGRES_URL")
    if not server:
        message = "TEST_POSTGRES_URL is not set; `make test` sets it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return async_url(server)


async def admin(url: str, statement: str) -> None:
    engine = create_async_engine(async_url(url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _named(server_url: str, prefix: str) -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = make_url(async_url(server_url)).set(database=name)
    return name, url.render_as_string(hide_password=False)


@contextmanager
def fresh_postgres(server_url: str, prefix: str = "grouped_users_live") -> Iterator[str]:
    """A new, empty database on the server of `server_url`, dropped afterwards (sync)."""
    name, url = _named(server_url, prefix)
    asyncio.run(admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield url
    finally:
        asyncio.run(admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def served_database(request: pytest.FixtureRequest, tmp_path: Path, prefix: str) -> Iterator[str]:
    """The body of a fixture with params ["sqlite", "postgresql"]: a SQLite file in
    tmp_path, or a fresh database on the test server, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'grouped-users.db'}"
        return
    with fresh_postgres(request.getfixturevalue("postgres_url"), prefix) as url:
        yield url


@asynccontextmanager
async def fresh_postgres_async(
    server_url: str, prefix: str = "grouped_users_live"
) -> AsyncIterator[str]:
    """As fresh_postgres, from inside an event loop."""
    name, url = _named(server_url, prefix)
    await admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        await admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- What the database holds, read directly in SQL --------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """users: userid -> (first_name, last_name); memberships: (group, userid) pairs."""

    users: dict[str, tuple[str, str]]
    groups: frozenset[str]
    memberships: frozenset[tuple[str, str]]
    # request id -> audit actions recorded under it
    audit: dict[str, list[str]]
    # memberships whose user or group row is missing (must be none)
    orphans: int
    integrity: str | None


async def snapshot(database_url: str) -> Snapshot:
    """Everything of the directory, read in one transaction straight from the tables."""
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as connection:
            integrity: str | None = None
            if engine.dialect.name == "sqlite":
                rows = (await connection.execute(text("PRAGMA integrity_check"))).all()
                integrity = "\n".join(str(row[0]) for row in rows)
            users = {
                str(row[0]): (str(row[1]), str(row[2]))
                for row in await connection.execute(
                    text("SELECT userid, first_name, last_name FROM users")
                )
            }
            groups = frozenset(
                str(row[0]) for row in await connection.execute(text("SELECT name FROM groups"))
            )
            memberships = frozenset(
                (str(row[0]), str(row[1]))
                for row in await connection.execute(
                    text(
                        "SELECT g.name, u.userid FROM memberships m"
                        " JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id"
                    )
                )
            )
            orphans = (
                await connection.execute(
                    text(
                        "SELECT count(*) FROM memberships m"
                        " LEFT JOIN groups g ON g.id = m.group_id"
                        " LEFT JOIN users u ON u.id = m.user_id"
                        " WHERE g.id IS NULL OR u.id IS NULL"
                    )
                )
            ).scalar_one()
            audit: dict[str, list[str]] = {}
            for row in await connection.execute(
                text("SELECT request_id, action FROM audit WHERE request_id IS NOT NULL")
            ):
                audit.setdefault(str(row[0]), []).append(str(row[1]))
    finally:
        await engine.dispose()
    return Snapshot(users, groups, memberships, audit, int(orphans), integrity)
