"""Typed settings read from GROUPED_USERS_* environment variables."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/grouped-users.db"
DEFAULT_SEARCH_TIMEOUT_MS = 5_000

# Plain URLs as other tools write them, mapped to the async drivers we ship.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GROUPED_USERS_", extra="ignore", frozen=True)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("GROUPED_USERS_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; sqlite:// and postgresql:// get their async driver.",
    )
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    db_pool_size: int = Field(default=20, ge=1)
    db_pool_timeout: float = Field(default=10.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    # Group commit on SQLite (app.group_commit): the writes of at most this
    # many requests share one COMMIT, and a batch commits once it has been
    # open this long even if more requests wait (1 = a COMMIT per request).
    sqlite_batch_max: int = Field(default=64, ge=1, le=10_000)
    sqlite_batch_wait_ms: float = Field(default=20.0, ge=0, le=10_000)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    # On SIGTERM: stop accepting, give requests in flight this long, then close.
    shutdown_timeout_seconds: float = Field(default=20.0, gt=0)
    # "disabled" is for local development: serve refuses it off loopback.
    auth: Literal["required", "disabled"] = "required"
    max_list_length: int = Field(default=50_000, ge=1)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    # A search (GET /users?q=) is stopped in the database after this long:
    # the request's time limit cannot stop a statement that is running.
    search_timeout_ms: int = Field(default=DEFAULT_SEARCH_TIMEOUT_MS, ge=1, le=600_000)
    # The connection layer of each worker (app.connections): the request line
    # and headers of one request, the time they may take to arrive, and the
    # connections one worker holds open at once.
    max_header_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    header_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    max_connections: int = Field(default=1000, ge=1)
    # Browser origins allowed to call the API; none (CORS off) unless listed.
    cors_origins: list[str] = Field(default_factory=list)
    # Write change events (the feed and webhooks). Off, writes record none and
    # /events answers 404 events_off: for a deployment that needs neither.
    events: bool = True
    # Change events are kept this long (seconds, or ISO 8601 such as P30D).
    event_retention: timedelta = Field(default=timedelta(days=30), gt=timedelta(0))
    # Webhooks: plain http:// and private or loopback receivers are refused
    # unless allowed (tests, receivers on the same premises).
    webhook_allow_http: bool = False
    webhook_allow_private: bool = False
    # A delivery is retried this long, then marked failed; an endpoint that
    # has failed for `webhook_disable_after` in a row is disabled.
    webhook_retry_for: timedelta = Field(default=timedelta(days=3), gt=timedelta(0))
    webhook_disable_after: timedelta = Field(default=timedelta(days=5), gt=timedelta(0))
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # The first retry waits about this long, each next one twice as long (jittered).
    webhook_backoff_seconds: float = Field(default=5.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    # After a secret rotation deliveries carry a signature with the previous
    # secret too, this long (0: the old secret stops at once).
    webhook_secret_overlap_hours: float = Field(default=24.0, ge=0)
    # Deliver webhooks from this process (every server process does by default).
    webhook_deliver: bool = True
    # Encrypts webhook signing secrets in the database (any text; a Fernet key is derived).
    secret_key: SecretStr | None = None

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise ValueError("must be a URL such as sqlite:///./data/grouped-users.db")
        return f"{_ASYNC_DRIVERS.get(scheme, scheme)}://{rest}"

    @property
    def webhook_secret_overlap(self) -> timedelta:
        return timedelta(hours=self.webhook_secret_overlap_hours)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite URL, None for memory or another database."""
        if not self.is_sqlite:
            return None
        path = self.database_url.partition(":///")[2].partition("?")[0]
        return Path(path) if path and path != ":memory:" else None


class SettingsError(Exception):
    """A setting from the environment has a bad value; the message names it."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise SettingsError(f"invalid setting: {problems}") from exc


def _variable(loc: tuple[int | str, ...]) -> str:
    name = str(loc[0]).upper() if loc else "?"
    prefix = Settings.model_config.get("env_prefix", "")
    return name if name.startswith(prefix) or name == "DATABASE_URL" else prefix + name


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read on first use, not at import."""
    return load_settings()
