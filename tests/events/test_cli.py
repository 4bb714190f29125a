"""`grouped-users webhook ...` runs the same use cases as /webhooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app.settings import Settings
from tests.support.live_server import ROOT


def grouped_users(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GROUPED_USERS_") and key != "DATABASE_URL"
    }
    environment["GROUPED_USERS_DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [sys.executable, "-m", "app", "webhook", *args],
        env=environment | env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.anyio
# The database fixture empties PostgreSQL's shared test database first.
@pytest.mark.usefixtures("database")
async def test_webhook_commands(settings: Settings) -> None:
    refused = grouped_users(settings, "create", "--url", "http://127.0.0.1:9/hook")
    assert refused.returncode != 0
    assert "https://" in refused.stderr

    allowed = {
        "GROUPED_USERS_WEBHOOK_ALLOW_HTTP": "true",
        "GROUPED_USERS_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    made = grouped_users(
        settings, "create", "--url", "http://127.0.0.1:9/hook", "--types", "user.created", **allowed
    )
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["secret"].startswith("whsec_")
    assert created["types"] == ["user.created"]
    hook = created["id"]

    listed = grouped_users(settings, "list")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [hook]
    assert "whsec_" not in listed.stdout

    off = grouped_users(settings, "disable", hook)
    assert json.loads(off.stdout)["enabled"] is False
    on = grouped_users(settings, "enable", hook)
    assert json.loads(on.stdout)["enabled"] is True
    rotated = grouped_users(settings, "rotate-secret", hook)
    assert rotated.stdout.strip().startswith("whsec_")
    assert rotated.stdout.strip() != created["secret"]
    assert grouped_users(settings, "deliveries", hook).stdout == ""
    missing = grouped_users(settings, "retry", hook, "evt_nope")
    assert missing.returncode != 0
    assert "evt_nope" in missing.stderr
    assert grouped_users(settings, "delete", hook).returncode == 0
    assert grouped_users(settings, "list").stdout == ""
    gone = grouped_users(settings, "delete", hook)
    assert gone.returncode != 0
    assert hook in gone.stderr
