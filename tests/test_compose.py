"""compose.yaml keeps the production shape that docs/docker.md describes.

`make check` also runs `docker compose config` on it where Docker Compose is
installed; this holds where it is not, and says what the file is for.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from app.settings import Settings
from tests.support.live_server import ROOT


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_the_service_requires_tokens_and_waits_for_a_healthy_database(
    compose: dict[str, Any],
) -> None:
    app = compose["services"]["app"]
    assert app["build"] == "."
    assert app["environment"]["GROUPED_USERS_AUTH"] == "required"
    assert app["environment"]["GROUPED_USERS_DATABASE_URL"].startswith("postgresql://")
    assert "@db:5432/" in app["environment"]["GROUPED_USERS_DATABASE_URL"]
    assert app["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert "8000:8000" in app["ports"]


def test_the_service_is_healthy_when_readyz_answers(compose: dict[str, Any]) -> None:
    check = compose["services"]["app"]["healthcheck"]
    assert check["test"][0] == "CMD"
    assert "http://127.0.0.1:8000/readyz" in " ".join(check["test"])


def test_postgresql_keeps_its_data_in_a_named_volume(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    assert db["image"].startswith("postgres:")
    assert "db-data:/var/lib/postgresql/data" in db["volumes"]
    assert "db-data" in compose["volumes"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])


def test_there_is_no_default_password(compose: dict[str, Any]) -> None:
    # ${VAR:?message}: Compose refuses to start without it, rather than using a known one.
    required = "${POSTGRES_PASSWORD:?"
    assert required in compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"]
    assert required in compose["services"]["app"]["environment"]["GROUPED_USERS_DATABASE_URL"]


def test_the_stop_grace_outlasts_the_servers_own(compose: dict[str, Any]) -> None:
    grace = compose["services"]["app"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > Settings.model_fields["shutdown_timeout_seconds"].default
