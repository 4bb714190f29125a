"""The grouped-users command: serve and db upgrade."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import uvicorn

from app import __version__
from app.db import create_database
from app.migrations import current_revision, head_revision, upgrade
from app.settings import Settings, SettingsError, get_settings


async def _migrate(settings: Settings) -> None:
    database = create_database(settings)
    try:
        await upgrade(database.engine)
    finally:
        await database.dispose()


async def _revision(settings: Settings) -> str | None:
    database = create_database(settings)
    try:
        return await current_revision(database.engine)
    finally:
        await database.dispose()


def serve(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(_migrate(settings))
    uvicorn.run(
        "app.api:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level,
        server_header=False,
        proxy_headers=False,
    )
    return 0


def db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(_migrate(settings))
    print(f"database at revision {head_revision()} (head)")
    return 0


def db_current(_args: argparse.Namespace, settings: Settings) -> int:
    revision = asyncio.run(_revision(settings))
    head = head_revision()
    state = "head" if revision == head else f"behind head {head}"
    print(f"database at revision {revision or 'none'} ({state})")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="grouped-users",
        description="A small directory service of user records and group memberships. "
        "Settings come from GROUPED_USERS_* environment variables.",
    )
    root.add_argument("--version", action="version", version=f"grouped-users {__version__}")
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="apply pending migrations, then serve HTTP")
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    run.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    run.add_argument("--workers", type=int, default=1, help="server processes (1)")
    run.set_defaults(handler=serve)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply pending migrations").set_defaults(
        handler=db_upgrade
    )
    db_commands.add_parser("current", help="show the schema revision").set_defaults(
        handler=db_current
    )
    return root


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:
        sys.exit(f"grouped-users: {exc}")
    sys.exit(args.handler(args, settings))
