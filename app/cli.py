"""The grouped-users command: serve, db, token and audit, over the same services as HTTP."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__
from app.auth import Actor, Role, parse_duration
from app.db import Database, create_database
from app.errors import DomainError
from app.logs import log_config
from app.migrations import current_revision, head_revision, upgrade
from app.service import audit, tokens
from app.settings import Settings, SettingsError, get_settings

T = TypeVar("T")


def _run(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        database = create_database(settings)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(main())


def _with_session(settings: Settings, use_case: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def work(database: Database) -> T:
        async with database.writer() as session:
            return await use_case(session)

    return _run(settings, work)


def _operator() -> Actor:
    """The audit log names a change made here after the local account that made it."""
    return Actor(name=f"cli:{getpass.getuser()}"[:64], role=Role.admin)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace, settings: Settings) -> int:
    if settings.auth == "disabled":
        if not is_loopback(args.host):
            print(
                f"grouped-users: refusing to serve on {args.host} with authentication disabled: "
                "anyone who can reach it could change the directory. Listen on 127.0.0.1, or "
                "set GROUPED_USERS_AUTH=required and create a token with "
                "'grouped-users token create --name admin --role admin'.",
                file=sys.stderr,
            )
            return 2
        print(
            "grouped-users: authentication is DISABLED (GROUPED_USERS_AUTH=disabled): "
            f"every request acts as admin; serving on loopback only ({args.host}).",
            file=sys.stderr,
            flush=True,
        )
    _run(settings, lambda database: upgrade(database.engine))
    if args.workers > 1:
        # Each worker writes its metrics to files here; /metrics sums them.
        metrics_dir = Path(tempfile.mkdtemp(prefix="grouped-users-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run(
        "app.api:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=log_config(settings.log_level, settings.log_format),
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
    )
    return 0


def db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    _run(settings, lambda database: upgrade(database.engine))
    print(f"database at revision {head_revision()} (head)")
    return 0


def db_current(_args: argparse.Namespace, settings: Settings) -> int:
    revision = _run(settings, lambda database: current_revision(database.engine))
    head = head_revision()
    state = "head" if revision == head else f"behind head {head}"
    print(f"database at revision {revision or 'none'} ({state})")
    return 0


def token_create(args: argparse.Namespace, settings: Settings) -> int:
    expires_in = None
    if args.expires_in is not None:
        seconds = parse_duration(args.expires_in)
        if seconds is None:
            print(
                "grouped-users: --expires-in takes a duration such as 12h or 90d", file=sys.stderr
            )
            return 2
        expires_in = timedelta(seconds=seconds)
    info, secret = _with_session(
        settings,
        lambda session: tokens.create_token(
            session, actor=_operator(), name=args.name, role=args.role, expires_in=expires_in
        ),
    )
    expiry = f", expires {info.expires_at.isoformat()}" if info.expires_at else ""
    print(f"token {info.name} ({info.role}{expiry}); its secret, shown this once:", file=sys.stderr)
    print(secret)
    return 0


def token_list(_args: argparse.Namespace, settings: Settings) -> int:
    found = _with_session(settings, tokens.list_tokens)
    print(f"{'NAME':<24} {'ROLE':<7} {'CREATED':<25} {'LAST USED':<25} EXPIRES")
    for info in found:
        print(
            f"{info.name:<24} {info.role:<7} {_when(info.created_at):<25} "
            f"{_when(info.last_used_at):<25} {_when(info.expires_at)}"
        )
    return 0


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    _with_session(
        settings,
        lambda session: tokens.revoke_token(session, actor=_operator(), name=args.name),
    )
    print(f"token {args.name} revoked")
    return 0


def audit_list(args: argparse.Namespace, settings: Settings) -> int:
    page = _with_session(
        settings,
        lambda session: audit.list_entries(
            session,
            limit=args.limit,
            resource=args.resource,
            actor=args.actor,
            since=args.since,
        ),
    )
    for entry in page.items:
        print(
            json.dumps(
                {
                    "id": entry.id,
                    "at": entry.at.isoformat(),
                    "actor": entry.actor,
                    "action": entry.action,
                    "resource": entry.resource,
                    "before": entry.before,
                    "after": entry.after,
                    "request_id": entry.request_id,
                },
                ensure_ascii=False,
            )
        )
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

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", help="apply pending migrations").set_defaults(handler=db_upgrade)
    db.add_parser("current", help="show the schema revision").set_defaults(handler=db_current)

    token = commands.add_parser("token", help="API tokens").add_subparsers(
        dest="token_command", required=True
    )
    create = token.add_parser("create", help="create a token and print its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=[role.name for role in Role])
    create.add_argument("--expires-in", help="a duration such as 12h or 90d (default: never)")
    create.set_defaults(handler=token_create)
    token.add_parser("list", help="list tokens (never their secrets)").set_defaults(
        handler=token_list
    )
    revoke = token.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("name")
    revoke.set_defaults(handler=token_revoke)

    log = commands.add_parser("audit", help="print the audit log, newest first, as JSON lines")
    log.add_argument("--limit", type=int, default=100)
    log.add_argument("--resource", help="only this resource, e.g. users/jsmith")
    log.add_argument("--actor", help="only changes by this actor")
    log.add_argument("--since", type=datetime.fromisoformat, help="ISO 8601 time")
    log.set_defaults(handler=audit_list)
    return root


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:
        sys.exit(f"grouped-users: {exc}")
    try:
        sys.exit(args.handler(args, settings))
    except DomainError as exc:
        sys.exit(f"grouped-users: {exc.detail}")
