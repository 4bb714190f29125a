"""End to end: the real command, the real server over HTTP, restarts on the same file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from app.migrations import head_revision
from tests.support.sockets import free_port

START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
COMMAND_TIMEOUT = 60.0


def _environment(database: Path, **extra: str) -> dict[str, str]:
    """This process's environment without our settings, plus the database and `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GROUPED_USERS_") and key != "DATABASE_URL"
    }
    env["GROUPED_USERS_DATABASE_URL"] = f"sqlite:///{database}"
    # Local development mode, as `make run`: loopback only, no tokens.
    env["GROUPED_USERS_AUTH"] = "disabled"
    env["PYTHONUNBUFFERED"] = "1"
    return env | extra


def _run_app(
    database: Path, cwd: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    """`python -m app ARGS` on this database, run to its end (bounded); its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=_environment(database, **extra),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the server and any worker processes it started (its own process group)."""
    # Also when the server itself is gone: a worker of it may be left behind.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT)


def _wait_until_up(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/openapi.json", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"server did not answer within {START_TIMEOUT} s:\n{log.read_text()}")


@contextmanager
def running_server(database: Path, log: Path, workers: int = 1) -> Iterator[httpx.Client]:
    """`python -m app serve` on a free port; stopped with SIGTERM, killed if need be."""
    port = free_port()
    command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            env=_environment(database),
            cwd=database.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_up(process, base_url, log)
        # A new connection per request, so that every worker gets to answer.
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=base_url, timeout=10.0, limits=no_keepalive) as client:
            yield client
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=STOP_TIMEOUT)
        # After a graceful shutdown uvicorn re-raises the signal it caught, as
        # service managers expect; its multi-worker supervisor exits with 0.
        assert returncode in (0, -signal.SIGTERM), log.read_text()
    finally:
        _kill(process)


def _record(userid: str) -> dict[str, object]:
    return {"first_name": userid.title(), "last_name": "Server", "groups": ["admins"]}


@pytest.mark.parametrize("workers", [1, 2])
def test_data_survives_a_restart(tmp_path: Path, workers: int) -> None:
    database, log = tmp_path / "gu.db", tmp_path / "server.log"
    userids = ["alice", "bob", "carol"]

    with running_server(database, log, workers) as client:
        response = client.post("/groups/admins")
        assert response.status_code == 201, response.text
        for userid in userids:
            response = client.post(f"/users/{userid}", json={"first_name": "X", "last_name": "Y"})
            assert response.status_code == 201, response.text
        response = client.put("/groups/admins", json=["carol", "alice"])
        assert response.status_code == 200, response.text
        assert response.json() == ["alice", "carol"]
        # With two workers, a change made through one is seen through the other.
        for _ in range(6):
            assert client.get("/groups/admins").json() == ["alice", "carol"]
        response = client.put("/users/bob", json=_record("bob"))
        assert response.status_code == 200, response.text
        assert client.delete("/users/carol").status_code == 204

    with running_server(database, log, workers) as client:
        assert client.get("/groups/admins").json() == ["alice", "bob"]
        assert client.get("/users/bob").json() == {"userid": "bob", **_record("bob")}
        assert client.get("/users/alice").json()["groups"] == ["admins"]
        assert client.get("/users/carol").status_code == 404
        assert client.post("/groups/admins").status_code == 409


def test_db_upgrade_creates_a_new_database_at_head(tmp_path: Path) -> None:
    database = tmp_path / "new" / "gu.db"
    result = _run_app(database, tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    head = head_revision()
    assert head is not None
    assert head in result.stdout
    assert database.is_file()

    current = _run_app(database, tmp_path, "db", "current")
    assert current.returncode == 0, current.stderr
    assert head in current.stdout
    assert "head" in current.stdout


def test_a_bad_setting_stops_serve_with_a_one_line_message(tmp_path: Path) -> None:
    database = tmp_path / "gu.db"
    result = _run_app(
        database,
        tmp_path,
        *("serve", "--host", "127.0.0.1", "--port", str(free_port())),
        GROUPED_USERS_MAX_BODY_BYTES="abc",
    )
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "GROUPED_USERS_MAX_BODY_BYTES" in message
    assert "Traceback" not in result.stderr
    # It stopped before touching the database.
    assert not database.exists()
