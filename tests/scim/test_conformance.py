"""scim2-tester's checks against the real server (tests/support/live_server.py), both databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from tests.support.live_server import LiveServer, fresh_postgres, launch, terminate, wait_until_up


def _serve(database_url: str, directory: Path) -> Iterator[LiveServer]:
    import asyncio

    server = launch(database_url, directory)
    try:
        asyncio.run(wait_until_up(server))
        yield server
    finally:
        asyncio.run(terminate(server))


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    if request.param == "sqlite":
        yield from _serve(f"sqlite:///{tmp_path}/scim.db", tmp_path)
        return
    base = os.environ.get("TEST_POSTGRES_URL")
    if not base:
        pytest.skip("TEST_POSTGRES_URL is not set; `make test` sets it")
    with fresh_postgres(base, prefix="grouped_users_scim") as url:
        yield from _serve(url, tmp_path)


def test_every_scim2_tester_check_passes(server: LiveServer) -> None:
    with httpx2.Client(base_url=f"{server.url}/scim/v2", timeout=10.0) as http:
        client = SyncSCIMClient(http)
        results = check_server(client)
    failed = [
        f"{result.title}: {result.reason}"
        for result in results
        if result.status not in (Status.SUCCESS, Status.SKIPPED)
    ]
    assert not failed, "\n".join(failed) + "\n" + server.log_problems()
    skipped = [f"{r.title}: {r.reason}" for r in results if r.status == Status.SKIPPED]
    assert not skipped, "\n".join(skipped)
    assert len(results) > 50
