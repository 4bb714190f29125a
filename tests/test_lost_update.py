"""No lost updates: the real server with 4 worker processes, many clients.

Each test starts `python -m app serve --workers 4` on a free port over a database
of its own (a fresh SQLite file, or a fresh PostgreSQL database on the
TEST_POSTGRES_URL server) and races many HTTP clients against it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.helpers import assert_problem
from tests.support.live_server import fresh_postgres
from tests.support.sockets import free_port

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 4
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 30.0
MERGE_PATCH = {"content-type": "application/merge-patch+json"}


@dataclass(frozen=True)
class Server:
    url: str
    log: Path

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server, then SIGKILL to its whole process group (workers included)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT)


@contextmanager
def _serving(database_url: str, log: Path) -> Iterator[Server]:
    """`python -m app serve --workers 4` of this tree on a free port, until it answers."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GROUPED_USERS_") and key != "DATABASE_URL"
    }
    env |= {"GROUPED_USERS_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    # Loopback only: no API tokens needed (a setting unknown to a server without auth).
    env["GROUPED_USERS_AUTH"] = "disabled"
    command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*command, "--workers", str(WORKERS)],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{server.log_tail()}")
            with suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/openapi.json", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer in {START_TIMEOUT} s:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        _stop(process)


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    log = tmp_path / "server.log"
    if request.param == "sqlite":
        with _serving(f"sqlite:///{tmp_path / 'grouped-users.db'}", log) as running:
            yield running
        return
    postgres_url: str = request.getfixturevalue("postgres_url")
    with fresh_postgres(postgres_url, "grouped_users_lost") as url, _serving(url, log) as running:
        yield running


def _client(server: Server) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    return httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT, limits=limits)


def _describe(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {request.url.path} -> {response.status_code}: {response.text}"


def _assert_no_server_errors(responses: list[httpx.Response], server: Server) -> None:
    errors = [_describe(r) for r in responses if r.status_code >= 500]
    assert not errors, "\n".join(errors) + "\n--- server log ---\n" + server.log_tail()


# --- 32 read-modify-write loops on one user, with If-Match ----------------------------------

CLIENTS = 32
# A client's PATCH fails only when another client's PATCH succeeded since its GET,
# and each other client succeeds once: CLIENTS attempts always suffice.
ATTEMPTS = 50
COUNTER = "/users/counter"


@dataclass
class Writer:
    """What one client saw: every response, and the value its successful PATCH wrote."""

    responses: list[httpx.Response] = field(default_factory=list)
    patches: list[httpx.Response] = field(default_factory=list)
    wrote: str | None = None


async def _increment(client: httpx.AsyncClient, start: asyncio.Barrier) -> Writer:
    """GET the counter, PATCH it to n+1 with If-Match; on 412 start over."""
    seen = Writer()
    for attempt in range(ATTEMPTS):
        response = await client.get(COUNTER)
        seen.responses.append(response)
        if attempt == 0:
            # Every client has read the first version before anyone writes.
            await start.wait()
        if response.status_code != 200:
            return seen
        n = int(response.json()["last_name"].removeprefix("n="))
        patch = await client.patch(
            COUNTER,
            content=json.dumps({"last_name": f"n={n + 1}"}),
            headers={**MERGE_PATCH, "If-Match": response.headers["etag"]},
        )
        seen.responses.append(patch)
        seen.patches.append(patch)
        if patch.status_code == 200:
            seen.wrote = patch.json()["last_name"]
            return seen
        if patch.status_code != 412:
            return seen
    return seen


async def test_concurrent_conditional_patches_lose_no_update(server: Server) -> None:
    async with _client(server) as client:
        response = await client.post(COUNTER, json={"first_name": "Count", "last_name": "n=0"})
        assert response.status_code == 201, response.text
        start = asyncio.Barrier(CLIENTS)
        writers = await asyncio.gather(*(_increment(client, start) for _ in range(CLIENTS)))
        final = await client.get(COUNTER)

    responses = [r for w in writers for r in w.responses]
    _assert_no_server_errors(responses, server)
    patches = [p for w in writers for p in w.patches]
    statuses = sorted({p.status_code for p in patches})
    assert statuses == [200, 412], [_describe(p) for p in patches if p.status_code != 412][:5]
    for refused in (p for p in patches if p.status_code == 412):
        assert_problem(refused, 412, "precondition_failed")
    successes = [p for p in patches if p.status_code == 200]

    # Every client got its increment in, each from a version nobody else wrote over.
    assert len(successes) == CLIENTS, [w.wrote for w in writers]
    assert sorted(w.wrote or "" for w in writers) == sorted(f"n={i}" for i in range(1, CLIENTS + 1))
    # All had read version 1 before the first PATCH: exactly one of those could succeed.
    assert len(patches) - len(successes) >= CLIENTS - 1
    # The stored counter is exactly the number of successful PATCHes.
    assert final.status_code == 200, final.text
    assert final.json()["last_name"] == f"n={len(successes)}"
    last = next(p for p in successes if p.json()["last_name"] == f"n={CLIENTS}")
    assert final.headers["etag"] == last.headers["etag"]


# --- Many clients add and remove single memberships on one group -----------------------------

MEMBER_CLIENTS = 16
USERS_PER_CLIENT = 3
USERIDS = [f"u{k:02d}" for k in range(MEMBER_CLIENTS * USERS_PER_CLIENT)]


def _steps(k: int) -> list[tuple[str, str, int]]:
    """(method, group, expected status) for user number k, in order."""
    steps = [("PUT", "g", 204), ("PUT", "h", 204), ("PUT", "g", 204)]  # the last is a no-op
    if k % 2 == 1:
        steps.append(("DELETE", "g", 204))
    if k % 3 == 0:
        steps += [("DELETE", "h", 204), ("DELETE", "h", 404)]
    if k % 4 == 1:
        steps.append(("PUT", "g", 204))
    return steps


def _expected_groups(k: int) -> list[str]:
    return [g for g, member in (("g", k % 2 == 0 or k % 4 == 1), ("h", k % 3 != 0)) if member]


async def _edit_memberships(client: httpx.AsyncClient, mine: list[int]) -> list[httpx.Response]:
    """Run the steps of this client's users, one step of each user in turn."""
    plans = {k: _steps(k) for k in mine}
    responses: list[httpx.Response] = []
    for step in range(max(len(plan) for plan in plans.values())):
        for k, plan in plans.items():
            if step < len(plan):
                method, group, _ = plan[step]
                path = f"/groups/{group}/members/{USERIDS[k]}"
                responses.append(await client.request(method, path))
    return responses


async def test_concurrent_single_membership_edits_end_in_the_expected_state(
    server: Server,
) -> None:
    async with _client(server) as client:
        for name in ("g", "h"):
            assert (await client.post(f"/groups/{name}")).status_code == 201
        for userid in USERIDS:
            response = await client.post(
                f"/users/{userid}", json={"first_name": "U", "last_name": "V"}
            )
            assert response.status_code == 201, response.text

        owned = [
            list(range(i * USERS_PER_CLIENT, (i + 1) * USERS_PER_CLIENT))
            for i in range(MEMBER_CLIENTS)
        ]
        results = await asyncio.gather(*(_edit_memberships(client, mine) for mine in owned))

        members = {name: (await client.get(f"/groups/{name}")).json() for name in ("g", "h")}
        groups = {u: (await client.get(f"/users/{u}")).json()["groups"] for u in USERIDS}

    responses = [r for rs in results for r in rs]
    _assert_no_server_errors(responses, server)
    # Each request answered as it would have alone.
    for mine, got in zip(owned, results, strict=True):
        plans = {k: _steps(k) for k in mine}
        expected = [
            plan[step][2]
            for step in range(max(len(plan) for plan in plans.values()))
            for plan in plans.values()
            if step < len(plan)
        ]
        assert [r.status_code for r in got] == expected, [_describe(r) for r in got]
    for refused in (r for r in responses if r.status_code == 404):
        assert_problem(refused, 404, "membership_not_found")

    for name in ("g", "h"):
        expected_members = [u for k, u in enumerate(USERIDS) if name in _expected_groups(k)]
        assert members[name] == expected_members, name
    assert groups == {u: _expected_groups(k) for k, u in enumerate(USERIDS)}
