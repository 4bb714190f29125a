from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import DEFAULT_DATABASE_URL, Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GROUPED_USERS_DATABASE_URL", "DATABASE_URL", "GROUPED_USERS_MAX_BODY_BYTES"):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.sqlite_path() == Path("data/grouped-users.db")
    assert settings.max_body_bytes == 8 * 1024 * 1024
    assert settings.max_header_bytes == 32 * 1024
    assert settings.header_timeout_seconds == 5.0
    assert settings.max_connections == 1000


def test_prefixed_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUPED_USERS_MAX_BODY_BYTES", "1024")
    monkeypatch.setenv("GROUPED_USERS_DATABASE_URL", "postgresql+asyncpg://u@db/directory")
    settings = load_settings()
    assert settings.max_body_bytes == 1024
    assert settings.database_url == "postgresql+asyncpg://u@db/directory"
    assert settings.sqlite_path() is None


def test_plain_database_url_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db/directory")
    assert load_settings().database_url == "postgresql+asyncpg://u@db/directory"


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
    ],
)
def test_plain_schemes_get_the_async_driver(given: str, used: str) -> None:
    assert Settings(database_url=given).database_url == used


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GROUPED_USERS_MAX_BODY_BYTES", "lots"),
        ("GROUPED_USERS_MAX_BODY_BYTES", "0"),
        ("GROUPED_USERS_LOG_LEVEL", "loud"),
        ("GROUPED_USERS_DATABASE_URL", "not a url"),
        ("GROUPED_USERS_MAX_HEADER_BYTES", "100"),
        ("GROUPED_USERS_MAX_HEADER_BYTES", "64MiB"),
        ("GROUPED_USERS_HEADER_TIMEOUT_SECONDS", "0"),
        ("GROUPED_USERS_HEADER_TIMEOUT_SECONDS", "forever"),
        ("GROUPED_USERS_MAX_CONNECTIONS", "0"),
    ],
)
def test_a_bad_value_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert variable in message
    assert "\n" not in message


def test_memory_database_has_no_file() -> None:
    assert Settings(database_url="sqlite+aiosqlite:///:memory:").sqlite_path() is None
