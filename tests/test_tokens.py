"""API token secrets: long, random, shown once, stored only as a digest.

A secret never reaches the database, the logs, a listing, an error or the audit
log; the CLI manages tokens on SQLite and PostgreSQL through the same services.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import select, update

from app.api import create_app
from app.auth import Actor, Role
from app.db import Database, create_database
from app.models import Base, Token
from app.service import tokens
from app.settings import Settings
from tests.support.helpers import assert_problem
from tests.support.live_server import fresh_postgres_async, postgres_server

pytestmark = pytest.mark.anyio

COMMAND_TIMEOUT = 120.0
SECRET = re.compile(r"gu_[A-Za-z0-9_-]{43,}")
OPERATOR = Actor("tests", Role.admin)


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def new_token(
    database: Database, name: str, role: str, expires_in: timedelta | None = None
) -> str:
    async with database.writer() as session:
        _, secret = await tokens.create_token(
            session, actor=OPERATOR, name=name, role=role, expires_in=expires_in
        )
    return secret


async def everything_stored(database: Database) -> list[tuple[str, str, str]]:
    """(table, column, value as text) of every value in every table."""
    found: list[tuple[str, str, str]] = []
    async with database.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in await connection.execute(select(table)):
                found += [(table.name, col, str(val)) for col, val in row._mapping.items()]
    return found


@dataclass(frozen=True)
class Admin:
    client: httpx.AsyncClient
    database: Database
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@pytest.fixture
async def admin(settings: Settings, database: Database) -> AsyncIterator[Admin]:
    """An app that requires tokens, and an admin token for it."""
    app = create_app(settings.model_copy(update={"auth": "required"}), database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield Admin(client, database, await new_token(database, "root", "admin"))


async def test_secrets_have_256_bits_and_are_unique(database: Database) -> None:
    secrets = [await new_token(database, f"t{index}", "reader") for index in range(32)]
    assert len(set(secrets)) == len(secrets)
    for secret in secrets:
        assert SECRET.fullmatch(secret), secret
        random_part = secret.removeprefix("gu_")
        assert len(random_part) >= 43
        assert len(base64.urlsafe_b64decode(random_part + "=" * (-len(random_part) % 4))) >= 32


async def test_secrets_are_stored_only_as_their_sha256(admin: Admin) -> None:
    response = await admin.client.post(
        "/tokens", json={"name": "ci", "role": "writer"}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    secrets = {"root": admin.secret, "ci": response.json()["token"]}
    async with admin.database.engine.connect() as connection:
        rows = (await connection.execute(select(Token.name, Token.digest))).all()
    assert dict(rows) == {name: sha256(secret) for name, secret in secrets.items()}
    stored = await everything_stored(admin.database)
    for secret in secrets.values():
        assert not [cell for cell in stored if secret.removeprefix("gu_") in cell[2]]
        # The digest is in the tokens table only.
        assert {cell[:2] for cell in stored if sha256(secret) in cell[2]} == {("tokens", "digest")}


async def test_secrets_never_reach_the_logs_or_the_database_driver(
    admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Every statement and its parameters, as SQLAlchemy logs them.
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    client, headers = admin.client, admin.headers
    response = await client.post("/tokens", json={"name": "ci", "role": "reader"}, headers=headers)
    assert response.status_code == 201, response.text
    secret = response.json()["token"]
    reader = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/users", headers=reader)).status_code == 200
    assert (await client.post("/groups/ops", headers=reader)).status_code == 403
    assert (await client.delete("/tokens/ci", headers=headers)).status_code == 204
    assert (await client.get("/users", headers=reader)).status_code == 401
    assert (await client.get("/tokens", headers=headers)).status_code == 200

    assert any(record.name.startswith("sqlalchemy.engine") for record in caplog.records)
    for record in caplog.records:
        for value in (admin.secret, secret):
            for part in (value, value.removeprefix("gu_")):
                assert part not in record.getMessage(), record.name
                assert part not in str(vars(record)), record.name


async def test_listings_never_show_secrets(admin: Admin) -> None:
    async with admin.database.writer() as session:
        found = await tokens.list_tokens(session)
    assert [info.name for info in found] == ["root"]
    fields = {"id", "name", "role", "created_at", "last_used_at", "expires_at"}
    assert set(vars(found[0])) == fields
    listed = await admin.client.get("/tokens", headers=admin.headers)
    assert listed.status_code == 200
    assert set(listed.json()[0]) == set(vars(found[0]))
    assert admin.secret not in listed.text
    assert sha256(admin.secret) not in listed.text


async def test_error_responses_never_show_secrets(admin: Admin) -> None:
    client, headers = admin.client, admin.headers
    reader = await new_token(admin.database, "ci", "reader")
    expired = await new_token(admin.database, "old", "admin", timedelta(hours=1))
    async with admin.database.engine.begin() as connection:
        past = datetime.now(UTC) - timedelta(days=1)
        await connection.execute(update(Token).where(Token.name == "old").values(expires_at=past))
    errors = [
        await client.get("/users", headers={"Authorization": f"Bearer {expired}"}),
        await client.post("/users/x", json={}, headers={"Authorization": f"Bearer {reader}"}),
        await client.post("/tokens", json={"name": "ci", "role": "reader"}, headers=headers),
        await client.post("/tokens", json={"name": "x", "role": reader}, headers=headers),
        await client.post(
            "/tokens", json={"name": "x", "role": "reader", "expires_in": reader}, headers=headers
        ),
        await client.post(
            "/tokens", json={"name": "x", "role": "reader", "token": reader}, headers=headers
        ),
    ]
    assert [response.status_code for response in errors] == [401, 403, 409, 422, 422, 422]
    for response in errors:
        for secret in (reader, expired, admin.secret):
            assert secret.removeprefix("gu_") not in response.text
            assert sha256(secret) not in response.text
            assert secret not in str(response.headers)


async def test_the_audit_log_never_holds_secrets(admin: Admin) -> None:
    response = await admin.client.post(
        "/tokens", json={"name": "ci", "role": "writer"}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    secret = response.json()["token"]
    assert (await admin.client.delete("/tokens/ci", headers=admin.headers)).status_code == 204
    audit = await admin.client.get("/audit", headers=admin.headers)
    assert audit.status_code == 200, audit.text
    # The token changes were recorded, without their secrets.
    assert {(e["action"], e["resource"]) for e in audit.json()["items"]} >= {
        ("token.create", "tokens/ci"),
        ("token.revoke", "tokens/ci"),
    }
    for value in (secret, admin.secret):
        assert value.removeprefix("gu_") not in audit.text
        assert sha256(value) not in audit.text


async def test_last_used_at_is_set_on_use(admin: Admin) -> None:
    secret = await new_token(admin.database, "ci", "reader")

    async def last_used() -> object:
        async with admin.database.writer() as session:
            return {i.name: i.last_used_at for i in await tokens.list_tokens(session)}["ci"]

    assert await last_used() is None
    used = await admin.client.get("/users", headers={"Authorization": f"Bearer {secret}"})
    assert used.status_code == 200
    assert await last_used() is not None
    listed = await admin.client.get("/tokens", headers=admin.headers)
    assert {e["name"]: e["last_used_at"] for e in listed.json()}["ci"] is not None


# --- the CLI, as a real process, on both databases ---


async def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GROUPED_USERS_") and key != "DATABASE_URL"
    }
    env["GROUPED_USERS_DATABASE_URL"] = url
    with anyio.fail_after(COMMAND_TIMEOUT):
        done = await anyio.run_process([sys.executable, "-m", "app", *args], env=env, check=False)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def cli_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database migrated with `db upgrade`."""
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'cli.db'}"
        else:
            url = await stack.enter_async_context(
                fresh_postgres_async(postgres_server(), "grouped_users_cli")
            )
        upgraded = await cli(url, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        yield url


async def test_cli_create_list_revoke(cli_url: str) -> None:
    create = ["token", "create", "--name", "ci", "--role", "writer", "--expires-in", "1h"]
    created = await cli(cli_url, *create)
    assert created.returncode == 0, created.stderr
    assert len(created.stdout.splitlines()) == 1
    secret = created.stdout.strip()
    assert SECRET.fullmatch(secret), created.stdout
    assert "ci" in created.stderr
    assert secret not in created.stderr

    listed = await cli(cli_url, "token", "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^ci\s+writer\s", listed.stdout, re.MULTILINE), listed.stdout
    for part in (secret.removeprefix("gu_"), sha256(secret)):
        assert part not in listed.stdout + listed.stderr

    database = create_database(Settings(database_url=cli_url))
    try:
        async with database.engine.connect() as connection:
            query = select(Token.digest, Token.created_at, Token.expires_at)
            row = (await connection.execute(query)).one()
        assert row.digest == sha256(secret)
        assert row.expires_at - row.created_at == timedelta(hours=1)
        required = Settings(database_url=cli_url, auth="required")
        transport = httpx.ASGITransport(app=create_app(required, database=database))
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=headers
        ) as client:
            assert (await client.get("/users")).status_code == 200
            assert (await client.post("/groups/ops")).status_code == 201
            revoked = await cli(cli_url, "token", "revoke", "ci")
            assert revoked.returncode == 0, revoked.stderr
            assert_problem(await client.get("/users"), 401, "unauthenticated")
    finally:
        await database.dispose()
    listed = await cli(cli_url, "token", "list")
    assert listed.returncode == 0, listed.stderr
    assert not re.search(r"^ci\s", listed.stdout, re.MULTILINE), listed.stdout


async def test_cli_refuses_a_duplicate_name(cli_url: str) -> None:
    first = await cli(cli_url, "token", "create", "--name", "ci", "--role", "reader")
    assert first.returncode == 0, first.stderr
    again = await cli(cli_url, "token", "create", "--name", "ci", "--role", "admin")
    assert again.returncode != 0
    assert "'ci'" in again.stderr
    assert "exists" in again.stderr
    assert "Traceback" not in again.stderr
    assert "gu_" not in again.stdout + again.stderr
    listed = await cli(cli_url, "token", "list")
    assert re.findall(r"^ci\s+(\w+)", listed.stdout, re.MULTILINE) == ["reader"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--name", "ci", "--role", "reader", "--expires-in", "soon"], "duration"),
        (["create", "--name", "ci", "--role", "reader", "--expires-in", "99999999d"], "36500d"),
        (["create", "--name", "ci", "--role", "reader", "--expires-in", "²d"], "duration"),
        (["create", "--name", "anonymous", "--role", "admin"], "reserved"),
        (["create", "--name", "cli:root", "--role", "admin"], "reserved"),
        (["create", "--name", "Bad Name", "--role", "reader"], "name"),
        (["revoke", "nobody"], "nobody"),
        (["create", "--name", "ci", "--role", "root"], "role"),
        (["create", "--name", "ci", "--role", "Admin"], "role"),
    ],
)
async def test_cli_refusals_say_why(cli_url: str, args: list[str], message: str) -> None:
    done = await cli(cli_url, "token", *args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert "gu_" not in done.stdout
    database = create_database(Settings(database_url=cli_url))
    try:
        async with database.engine.connect() as connection:
            assert (await connection.execute(select(Token.name))).all() == []
    finally:
        await database.dispose()
