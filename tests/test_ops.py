"""Operations: probes, Prometheus metrics, request logs, graceful shutdown.

The probes and the metric labels are checked in-process; metrics summed over
worker processes, the JSON log lines on stderr and a graceful stop on
SIGTERM with the real `python -m app serve`.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy.engine import Connection

from app.api import create_app
from app.auth import Actor, Role
from app.db import Database, create_database
from app.migrations import alembic_config, head_revision
from app.service import tokens
from app.settings import Settings
from tests.support.helpers import assert_problem
from tests.support.live_server import (
    STOP_TIMEOUT,
    fresh_postgres,
    graceful_exit,
    launch,
    serving,
    snapshot,
    terminate,
    wait_for_exit,
    wait_until_up,
)
from tests.support.sockets import LOOPBACK, connect, free_port, json_head, read_response

pytestmark = pytest.mark.anyio

HEX_ID = re.compile(r"[0-9a-f]{32}")
REQUESTS = "grouped_users_requests_total"
LATENCY = "grouped_users_request_duration_seconds"
IN_FLIGHT = "grouped_users_requests_in_flight"


@asynccontextmanager
async def _asgi(
    app: FastAPI, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=headers or {}
    ) as client:
        yield client


def _samples(exposition: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(exposition) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples of this name whose labels include `labels`."""
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _assert_not_ready(response: httpx.Response, *in_detail: str) -> None:
    body = assert_problem(response, 503, "not_ready")
    assert response.headers["retry-after"].isdigit(), response.headers
    for part in in_detail:
        assert part in body["detail"], body


# --- /healthz and /readyz ---------------------------------------------------------------------


async def test_healthz_answers_without_touching_the_database() -> None:
    # A "PostgreSQL server" that accepts connections into its backlog and never speaks:
    # any attempt to use the database would show up here (and hang).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(16)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        settings = Settings(
            database_url=f"postgresql+asyncpg://postgres@{LOOPBACK}:{port}/nowhere",
            auth="disabled",
        )
        database = create_database(settings)
        try:
            async with _asgi(create_app(settings, database=database)) as client:
                for _ in range(3):
                    response = await asyncio.wait_for(client.get("/healthz"), 10)
                    assert response.status_code == 200, response.text
                    assert response.json() == {"status": "ok"}
        finally:
            await database.dispose()
        with pytest.raises(BlockingIOError):
            listener.accept()


async def test_readyz_is_503_while_the_database_is_unreachable() -> None:
    settings = Settings(
        database_url=f"postgresql+asyncpg://postgres@{LOOPBACK}:{free_port()}/nowhere",
        auth="disabled",
    )
    database = create_database(settings)
    try:
        async with _asgi(create_app(settings, database=database)) as client:
            # Alive all the same.
            health = await asyncio.wait_for(client.get("/healthz"), 10)
            assert health.status_code == 200, health.text
            ready = await asyncio.wait_for(client.get("/readyz"), 20)
    finally:
        await database.dispose()
    _assert_not_ready(ready, "does not answer")


async def test_readyz_is_200_with_the_revision_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "revision": head_revision()}


async def _migrate_to(url: str, revision: str) -> None:
    database = create_database(Settings(database_url=url))
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await database.dispose()


@pytest.fixture(params=["sqlite-new", "sqlite-0001", "postgresql-new"])
def behind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(database URL, the revision it is at) of a database whose schema is behind head."""
    if request.param == "sqlite-new":
        yield f"sqlite+aiosqlite:///{tmp_path / 'new.db'}", "none"
    elif request.param == "sqlite-0001":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        asyncio.run(_migrate_to(url, "0001"))
        yield url, "0001"
    else:
        with fresh_postgres(request.getfixturevalue("postgres_url"), "grouped_users_ops") as url:
            yield url, "none"


async def test_readyz_is_503_while_the_schema_is_behind(behind: tuple[str, str]) -> None:
    url, revision = behind
    settings = Settings(database_url=url, auth="disabled")
    database = create_database(settings)
    try:
        async with _asgi(create_app(settings, database=database)) as client:
            health = await client.get("/healthz")
            ready = await asyncio.wait_for(client.get("/readyz"), 20)
    finally:
        await database.dispose()
    assert health.status_code == 200, health.text
    head = head_revision()
    assert head is not None
    _assert_not_ready(ready, f"revision {revision}", head)


# --- With authentication required -------------------------------------------------------------


async def test_probes_are_open_and_metrics_need_a_reader(
    settings: Settings, database: Database
) -> None:
    async with database.writer() as session:
        _, reader = await tokens.create_token(
            session, actor=Actor("tests", Role.admin), name="ops-reader", role="reader"
        )
    app = create_app(settings.model_copy(update={"auth": "required"}), database=database)
    async with _asgi(app) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200, health.text
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["revision"] == head_revision()

        anonymous = await client.get("/metrics")
        assert_problem(anonymous, 401, "unauthenticated")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-a-token"})
        assert_problem(wrong, 401, "unauthenticated")
        allowed = await client.get("/metrics", headers={"Authorization": f"Bearer {reader}"})
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["content-type"].startswith("text/plain")
        assert REQUESTS in allowed.text


# --- /metrics ---------------------------------------------------------------------------------


async def test_metrics_label_requests_by_route_template(client: httpx.AsyncClient) -> None:
    before = _samples((await client.get("/metrics")).text)
    template = {"method": "GET", "route": "/users/{userid}"}
    missing = _value(before, REQUESTS, **template, status="404")
    found = _value(before, REQUESTS, **template, status="200")
    observed = _value(before, f"{LATENCY}_count", **template)

    created = await client.post("/users/metrics-raw-1", json={"first_name": "M", "last_name": "R"})
    assert created.status_code == 201, created.text
    assert (await client.get("/users/metrics-raw-1")).status_code == 200
    for i in range(3):
        assert (await client.get(f"/users/metrics-raw-missing-{i}")).status_code == 404
    assert (await client.get("/no/such/metrics-raw-route")).status_code == 404

    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "version=" in response.headers["content-type"]
    samples = _samples(response.text)

    assert _value(samples, REQUESTS, **template, status="404") == missing + 3
    assert _value(samples, REQUESTS, **template, status="200") == found + 1
    assert _value(samples, REQUESTS, method="POST", route="/users/{userid}", status="201") >= 1
    # Latency histogram, with buckets, by template and method.
    assert _value(samples, f"{LATENCY}_count", **template) == observed + 4
    assert _value(samples, f"{LATENCY}_bucket", **template, le="+Inf") == observed + 4
    assert _value(samples, f"{LATENCY}_sum", **template) > 0
    buckets = {s.labels["le"] for s in samples if s.name == f"{LATENCY}_bucket"}
    assert len(buckets) > 3, buckets
    # In flight: at least this very request.
    assert _value(samples, IN_FLIGHT) >= 1
    # Never a raw path in a label: the label values stay bounded.
    for sample in samples:
        for value in sample.labels.values():
            assert "metrics-raw" not in value, sample


def _request_lines(stderr: list[str]) -> list[dict[str, Any]]:
    lines = []
    for line in stderr:
        if not line.startswith("{"):
            continue
        entry: dict[str, Any] = json.loads(line)
        if entry.get("logger") == "grouped_users.requests":
            lines.append(entry)
    return lines


async def test_two_workers_sum_their_metrics_and_log_one_line_per_request(
    tmp_path: Path,
) -> None:
    n = 40
    sent = [f"ops-test.{i}:x" for i in range(n)]
    async with serving(f"sqlite:///{tmp_path / 'gu.db'}", tmp_path, workers=2) as server:
        # A new connection per request, so that both workers get to answer.
        fresh = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, timeout=10.0, limits=fresh) as client:
            answered = 0
            ready = await client.get("/readyz")
            answered += 1
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"status": "ready", "revision": head_revision()}

            for userid, request_id in enumerate(sent):
                response = await client.get(
                    f"/users/nobody-{userid}", headers={"X-Request-ID": request_id}
                )
                answered += 1
                assert_problem(response, 404, "user_not_found")
                assert response.headers["x-request-id"] == request_id

            generated = (await client.get("/healthz")).headers["x-request-id"]
            insane = (
                await client.get("/healthz", headers={"X-Request-ID": "two words/" + "x" * 200})
            ).headers["x-request-id"]
            answered += 2
            assert HEX_ID.fullmatch(generated), generated
            assert HEX_ID.fullmatch(insane), insane

            # Whichever worker answers /metrics reports the sum over both; the
            # other worker's counts arrive within a second (metrics.Tally).
            template = {"method": "GET", "route": "/users/{userid}"}
            deadline = time.monotonic() + 5
            polls = 0
            while True:
                response = await client.get("/metrics")
                answered += 1
                polls += 1
                samples = _samples(response.text)
                counted = _value(samples, REQUESTS, **template, status="404")
                if counted == n or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            for _ in range(6):
                response = await client.get("/metrics")
                answered += 1
                assert response.status_code == 200, response.text
                samples = _samples(response.text)
                assert _value(samples, REQUESTS, **template, status="404") == n, response.text
                assert _value(samples, f"{LATENCY}_count", **template) == n
                assert _value(samples, f"{LATENCY}_bucket", **template, le="+Inf") == n
                assert _value(samples, REQUESTS) >= n + 3
                assert _value(samples, IN_FLIGHT) >= 1
                assert all("nobody" not in v for s in samples for v in s.labels.values())

        # Read while serving: serve removes the directory when it stops.
        per_worker = _per_worker(tmp_path, REQUESTS, method="GET", route="/users/{userid}")
        # Stopped before reading: a worker writes its line after the answer has gone.
        code = await terminate(server)
        assert graceful_exit(code), server.log_tail()
        lines = _request_lines(server.stderr_lines())

    ours = [line for line in lines if line.get("request_id") != "startup-probe"]
    # One line per request, no more, no less.
    assert len(ours) == answered, [line["msg"] for line in ours]
    by_id = {line["request_id"]: line for line in ours}
    assert len(by_id) == answered, "request ids repeat"
    for userid, request_id in enumerate(sent):
        line = by_id[request_id]
        assert line["method"] == "GET"
        assert line["route"] == "/users/{userid}"
        assert line["path"] == f"/users/nobody-{userid}"
        assert line["status"] == 404
        assert isinstance(line["duration_ms"], float | int)
        assert line["duration_ms"] >= 0
        assert line["level"] == "info"
    for request_id in (generated, insane):
        assert by_id[request_id]["route"] == "/healthz"
        assert by_id[request_id]["status"] == 200
    metrics_lines = [line for line in ours if line["route"] == "/metrics"]
    assert len(metrics_lines) == polls + 6
    assert all(line["status"] == 200 for line in metrics_lines)

    # Both workers answered some of the n requests, and every /metrics above showed their sum.
    assert len(per_worker) == 2, per_worker
    assert sum(per_worker.values()) == n, per_worker
    assert all(count > 0 for count in per_worker.values()), per_worker


def _per_worker(directory: Path, name: str, **labels: str) -> dict[str, float]:
    """From the multiprocess files of a running serve (its TMPDIR is the test's): pid -> value."""
    (metrics_dir,) = directory.glob("grouped-users-metrics-*")
    values = {}
    for counter in metrics_dir.glob("counter_*.db"):
        pid = counter.stem.removeprefix("counter_")
        alone = directory / f"worker-{pid}"
        alone.mkdir()
        shutil.copy(counter, alone / counter.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        values[pid] = _value(_samples(generate_latest(registry).decode()), name, **labels)
    return values


# --- Graceful shutdown ------------------------------------------------------------------------


async def _wait_in_flight(url: str, at_least: int, within: float = 10.0) -> None:
    """Until /metrics (counting itself) shows `at_least` requests in flight."""
    deadline = asyncio.get_running_loop().time() + within
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
        while True:
            seen = _value(_samples((await client.get("/metrics")).text), IN_FLIGHT)
            if seen >= at_least:
                return
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"only {seen} requests in flight after {within} s")
            await asyncio.sleep(0.05)


async def _wait_refused(port: int, within: float = 10.0) -> None:
    """Until a new connection to the port is refused: the server stopped accepting."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        try:
            _, probe = await connect(port, 2)
        except (ConnectionRefusedError, TimeoutError):
            return
        probe.close()
        with suppress(OSError):
            await probe.wait_closed()
        await asyncio.sleep(0.05)
    pytest.fail(f"the server still accepts connections {within} s after SIGTERM")


async def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gu.db'}"
    body = json.dumps({"first_name": "Slow", "last_name": "Poke", "groups": []}).encode()
    head = json_head("POST", "/users/slowpoke", body, {"X-Request-ID": "in-flight-at-sigterm"})
    server = launch(url, tmp_path)
    connection: asyncio.StreamWriter | None = None
    try:
        await wait_until_up(server)
        reader, connection = await asyncio.open_connection(LOOPBACK, server.port)
        # Headers and half the body: the app has the request and waits for the rest.
        connection.write(head + body[:10])
        await connection.drain()
        await _wait_in_flight(server.url, at_least=2)

        server.process.send_signal(signal.SIGTERM)
        await _wait_refused(server.port)
        assert server.process.poll() is None, "the server did not wait for its request"

        connection.write(body[10:])
        await connection.drain()
        status, headers, payload = await asyncio.wait_for(read_response(reader), 10)
        assert status == 201, payload
        assert json.loads(payload)["userid"] == "slowpoke"
        assert headers["x-request-id"] == "in-flight-at-sigterm"
        assert headers.get("connection") == "close", headers

        code = await wait_for_exit(server, STOP_TIMEOUT)
        assert graceful_exit(code), f"exit status {code}\n{server.log_tail()}"
    finally:
        if connection is not None:
            connection.close()
        await terminate(server)

    # The change was committed whole: record and its audit entry.
    stored = await snapshot(url)
    assert stored.users["slowpoke"] == ("Slow", "Poke")
    assert stored.audit["in-flight-at-sigterm"] == ["user.create"]
    logged = [
        line
        for line in _request_lines(server.stderr_lines())
        if line.get("request_id") == "in-flight-at-sigterm"
    ]
    assert [(line["route"], line["status"]) for line in logged] == [("/users/{userid}", 201)]
