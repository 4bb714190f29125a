"""The real `serve` at start: the migration it applied; a data directory it cannot write.

The image runs as uid 10001 and keeps its SQLite file in /data; a bind-mounted
host folder owned by root used to end the start in an SQLite traceback that
named no path. Here the server runs without the power to write the directory:
as a user other than the directory's owner, or, as root (CI), with the
capabilities dropped that let root write anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.migrations import head_revision
from tests.support.live_server import (
    ROOT,
    START_TIMEOUT,
    LiveServer,
    fresh_postgres,
    postgres_server,
    server_environment,
    serving,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database: no schema at all yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'gu.db'}"
        return
    with fresh_postgres(postgres_server(), "grouped_users_start") as url:
        yield url


def _log_messages(server: LiveServer, logger: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in server.stderr_lines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == logger]


async def test_serve_logs_the_migration_it_applied_then_that_none_was_needed(
    tmp_path: Path, database_url: str
) -> None:
    head = head_revision()

    async with serving(database_url, tmp_path, name="first") as server:
        first = _log_messages(server, "grouped_users.cli")
    assert [line["msg"] for line in first] == [
        f"database migrated from revision none to head revision {head}"
    ]
    assert first[0]["level"] == "info"
    assert first[0]["from_revision"] is None
    assert first[0]["revision"] == head

    async with serving(database_url, tmp_path, name="second") as server:
        second = _log_messages(server, "grouped_users.cli")
    assert [line["msg"] for line in second] == [
        f"database at head revision {head}: no migration to apply"
    ]
    # Alembic's own step-by-step lines stay out of the server's log.
    assert not _log_messages(server, "alembic.runtime.migration")


def _without_write_power(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    # util-linux's setpriv: root without CAP_DAC_OVERRIDE obeys a directory's mode.
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]


def _run_unprivileged(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = server_environment(f"sqlite:///{database}", {"GROUPED_USERS_AUTH": "required"})
    return subprocess.run(
        _without_write_power([sys.executable, "-m", "app", *args]),
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


def _assert_one_clear_line(result: subprocess.CompletedProcess[str], culprit: Path) -> None:
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "Uvicorn running" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{culprit} is not writable by uid {os.geteuid()}" in lines[0]
    assert f"chown {os.geteuid()}" in lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--host", "127.0.0.1", "--port", "1"],
        ["token", "create", "--name", "root", "--role", "admin"],
    ],
    ids=["serve", "token-create"],
)
def test_an_unwritable_data_directory_is_named_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o555)
    try:
        result = _run_unprivileged(data / "grouped-users.db", *command)
    finally:
        data.chmod(0o755)
    _assert_one_clear_line(result, data)
    assert result.stdout == ""
    assert list(data.iterdir()) == []


def test_a_data_directory_that_cannot_be_made_is_named_by_its_parent(tmp_path: Path) -> None:
    parent = tmp_path / "volume"
    parent.mkdir(mode=0o555)
    try:
        result = _run_unprivileged(parent / "data" / "grouped-users.db", "serve")
    finally:
        parent.chmod(0o755)
    _assert_one_clear_line(result, parent)
    assert not (parent / "data").exists()


def test_a_database_file_it_cannot_write_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    database = data / "grouped-users.db"
    made = _run_unprivileged(database, "db", "upgrade")
    assert made.returncode == 0, made.stderr
    database.chmod(0o444)
    result = _run_unprivileged(database, "serve")
    _assert_one_clear_line(result, database)
