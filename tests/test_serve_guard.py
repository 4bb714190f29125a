"""`serve` and the auth setting, as a real process.

Auth may be off only on loopback: off on any other address, serve refuses to
start, says why and how to fix it, and listens on nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from tests.support.sockets import free_port

START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
POLL = 0.05


def _environment(database: Path, auth: str | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GROUPED_USERS_") and key != "DATABASE_URL"
    }
    env["GROUPED_USERS_DATABASE_URL"] = f"sqlite:///{database}"
    env["PYTHONUNBUFFERED"] = "1"
    if auth is not None:
        env["GROUPED_USERS_AUTH"] = auth
    return env


def _accepts(port: int) -> bool:
    """Whether anything accepts connections on this port of a loopback address."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            with suppress(OSError):
                sock.connect((host, port))
                return True
    return False


def _kill(process: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT)


@contextmanager
def _serving(
    tmp_path: Path, host: str, auth: str | None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`python -m app serve` with stdout and stderr in files; killed at the end."""
    port = free_port()
    command = [sys.executable, "-m", "app", "serve", "--host", host, "--port", str(port)]
    with (tmp_path / "stdout").open("wb") as out, (tmp_path / "stderr").open("wb") as err:
        process = subprocess.Popen(
            command,
            env=_environment(tmp_path / "gu.db", auth),
            cwd=tmp_path,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        yield process, port
    finally:
        _kill(process)


def _output(tmp_path: Path) -> str:
    return (tmp_path / "stdout").read_text() + (tmp_path / "stderr").read_text()


def _wait_until_up(process: subprocess.Popen[bytes], port: int, tmp_path: Path) -> httpx.Client:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{_output(tmp_path)}")
        with suppress(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/users", timeout=2.0)
            return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0)
        time.sleep(POLL)
    pytest.fail(f"server did not answer within {START_TIMEOUT} s:\n{_output(tmp_path)}")


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=_environment(tmp_path / "gu.db", None),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_auth_disabled_off_loopback_refuses_to_start(tmp_path: Path, host: str) -> None:
    with _serving(tmp_path, host, "disabled") as (process, port):
        listened = False
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            listened = listened or _accepts(port)
            time.sleep(POLL)
        if process.poll() is None:
            pytest.fail(f"serve on {host} with auth disabled kept running:\n{_output(tmp_path)}")
    assert process.returncode != 0
    assert not listened, f"it listened on port {port} before it gave up"
    message = (tmp_path / "stderr").read_text()
    assert "Traceback" not in message
    # Why: the address and that auth is disabled; how to fix it: both ways out.
    assert host in message
    assert "GROUPED_USERS_AUTH" in message
    assert "required" in message
    assert "127.0.0.1" in message
    assert "Uvicorn running" not in _output(tmp_path)


def test_auth_disabled_on_loopback_starts_and_says_so_first(tmp_path: Path) -> None:
    with _serving(tmp_path, "127.0.0.1", "disabled") as (process, port):
        with _wait_until_up(process, port, tmp_path) as client:
            assert client.get("/users").status_code == 200
            assert client.post("/groups/ops").status_code == 201
            assert client.get("/openapi.json").status_code == 200
        first = (tmp_path / "stderr").read_text().splitlines()[0]
        assert "authentication is disabled" in first.lower(), first


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_auth_required_by_default_asks_for_a_token(tmp_path: Path, host: str) -> None:
    upgraded = _cli(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    created = _cli(tmp_path, "token", "create", "--name", "ci", "--role", "reader")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()

    with (
        _serving(tmp_path, host, None) as (process, port),
        _wait_until_up(process, port, tmp_path) as client,
    ):
        # The docs' page holds no data (app.api.pages); the document it shows does.
        assert client.get("/docs").status_code == 200
        for path in ("/users", "/openapi.json"):
            refused = client.get(path)
            assert refused.status_code == 401, refused.text
            assert refused.headers["Content-Type"] == "application/problem+json"
            assert refused.json()["code"] == "unauthenticated"
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        answered = client.get("/users", headers={"Authorization": f"Bearer {secret}"})
        assert answered.status_code == 200, answered.text
        for response in (refused, answered):
            assert "server" not in response.headers
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Cache-Control"] == "no-store"
    assert "disabled" not in (tmp_path / "stderr").read_text().lower()
