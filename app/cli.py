"""The grouped-users command: serve, db, token, audit, import, export; the services of HTTP."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import json
import logging
import logging.config
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, NoReturn, TypeVar

import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession
from tqdm import tqdm

from app import __version__, bulkfiles, datadir
from app.auth import DURATION_RULE, Actor, Role, parse_duration
from app.db import Database, create_database
from app.errors import DomainError
from app.logs import log_config
from app.migrations import current_revision, head_revision, upgrade
from app.names import NAME_LENGTH
from app.service import audit, bulk, tokens
from app.serving_loop import event_loop
from app.settings import Settings, SettingsError, get_settings
from app.timestamps import parse_timestamp

T = TypeVar("T")

logger = logging.getLogger("grouped_users.cli")


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


def _with_reader(settings: Settings, use_case: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run a use case that only reads: on SQLite it takes no write lock, so
    it neither waits for a writer nor makes one wait (a plain BEGIN, app.db)."""

    async def work(database: Database) -> T:
        async with database.reader() as session:
            return await use_case(session)

    return _run(settings, work)


def _operator() -> Actor:
    """The audit log names a change made here after the local account that made it."""
    return Actor(name=f"cli:{getpass.getuser()}"[:NAME_LENGTH], role=Role.admin)


def serve(args: argparse.Namespace, settings: Settings) -> int:
    # Here, not at the top: the other commands need none of the app.
    from app.api.local_only import is_loopback_name

    if settings.auth == "disabled":
        if not is_loopback_name(args.host):
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
    # uvicorn sets up the same logging again when it starts; the migration
    # line comes before it, in the same format as every line after.
    logging.config.dictConfig(log_config(settings.log_level, settings.log_format))
    _run(settings, _migrate_at_start)
    metrics_dir: Path | None = None
    if args.workers > 1:
        # Each worker writes its metrics to files here; /metrics sums them.
        metrics_dir = Path(tempfile.mkdtemp(prefix="grouped-users-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    try:
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
            # httptools with our limits on header size, header time and connections.
            http="app.connections:LimitedHttpToolsProtocol",
            # asyncio's loop on SQLite, uvloop on PostgreSQL (app.serving_loop).
            loop=event_loop(settings),
            # Quiet after a response is waiting for the next headers: one limit for both.
            timeout_keep_alive=math.ceil(settings.header_timeout_seconds),
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


async def _migrate_at_start(database: Database) -> None:
    """Bring the schema to head and say in the log what that did."""
    before = await current_revision(database.engine)
    await upgrade(database.engine)
    head = head_revision()
    if before == head:
        logger.info(
            "database at head revision %s: no migration to apply", head, extra={"revision": head}
        )
    else:
        logger.info(
            "database migrated from revision %s to head revision %s",
            before or "none",
            head,
            extra={"from_revision": before, "revision": head},
        )


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
                f"grouped-users: --expires-in {DURATION_RULE}, not {args.expires_in!r}",
                file=sys.stderr,
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
    found = _with_reader(settings, tokens.list_tokens)
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
    page = _with_reader(
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
                    "server_request_id": entry.server_request_id,
                    "token_id": entry.token_id,
                },
                ensure_ascii=False,
            )
        )
    return 0


def import_users(args: argparse.Namespace, settings: Settings) -> int:
    try:
        fmt = bulkfiles.format_of(args.file, args.format)
        stream = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115
    except bulkfiles.FileFormatError as exc:
        print(f"grouped-users: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"grouped-users: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    name = "standard input" if args.file == "-" else args.file
    started = time.monotonic()
    _few_collections()
    try:
        with stream, _ImportProgress(stream) as progress:
            result = _with_session(
                settings,
                lambda session: bulk.import_users(
                    session,
                    actor=_operator(),
                    rows=bulkfiles.read_rows(stream, fmt),
                    create_groups=args.create_groups,
                    replace=args.replace,
                    batch_size=args.batch_size,
                    report_limit=args.report_limit,
                    progress=progress.update,
                ),
            )
    except bulk.ImportRefused as exc:
        _report(name, bulkfiles.PLACE[fmt], exc)
        return 1
    created = result.groups_created
    shown = ", ".join(created[:5]) + (", ..." if len(created) > 5 else "")
    details = [f"{_counted(len(created), 'group')} created: {shown}"] if created else []
    if args.replace:
        details.insert(
            0,
            f"{result.created:,} created, {result.replaced:,} replaced, "
            f"{result.unchanged:,} unchanged",
        )
    extra = f" ({'; '.join(details)})" if details else ""
    seconds = time.monotonic() - started
    print(f"imported {_counted(result.rows, 'user')} from {name}{extra} in {seconds:.1f} s")
    return 0


def _counted(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _few_collections() -> None:
    # Rows come and go by the million, each a few objects: look for reference
    # cycles less often than every 700 allocations, and never among what was
    # loaded at start. It halves the CPU time of an export.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _report(name: str, place: str, refused: bulk.ImportRefused) -> None:
    print(f"grouped-users: {name}: {refused.detail} The bad rows:", file=sys.stderr)
    for row in refused.bad_rows:
        who = f" [{row.userid}]" if row.userid else ""
        print(f"{place} {row.line}{who}: {row.message}", file=sys.stderr)
    hidden = refused.count - len(refused.bad_rows)
    if hidden:
        print(f"... and {hidden:,} more (--report-limit shows more)", file=sys.stderr)
    reasons = {row.reason for row in refused.bad_rows}
    if bulk.Reason.exists in reasons:
        print("--replace overwrites the users that exist.", file=sys.stderr)
    if bulk.Reason.unknown_groups in reasons:
        print("--create-groups creates the groups that do not exist.", file=sys.stderr)


def _bar(desc: str, unit: str, total: int | None = None, divisor: int = 1000) -> tqdm[NoReturn]:
    # Drawn on a terminal only: in a pipe or a log, stderr stays quiet.
    return tqdm(
        desc=desc,
        total=total,
        unit=unit,
        unit_scale=True,
        unit_divisor=divisor,
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        dynamic_ncols=True,
        mininterval=0.25,
    )


class _ImportProgress:
    """Bytes read of the file (for the ETA), with the rows and rows/s beside them."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.rows, self.read = stream, 0, 0
        self.started = time.monotonic()
        try:
            size: int | None = os.fstat(stream.fileno()).st_size or None
            stream.tell()
        except (OSError, ValueError):
            size = None
        self.bar = _bar("import", "B", total=size, divisor=1024)

    def update(self, rows: int) -> None:
        self.rows += rows
        try:
            position = self.stream.tell()
        except (OSError, ValueError):
            position = self.read
        self.bar.update(position - self.read)
        self.read = position
        rate = self.rows / max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{self.rows:,} rows, {rate:,.0f} rows/s")

    def __enter__(self) -> _ImportProgress:
        return self

    def __exit__(self, *_: object) -> None:
        self.bar.close()


class _ExportProgress:
    """Writes the records on, and counts them on a bar (an ExportSink)."""

    def __init__(self, writer: bulkfiles.RecordWriter) -> None:
        self.writer = writer
        self.bar: tqdm[NoReturn] | None = None

    def start(self, total: int) -> None:
        self.bar = _bar("export", " rows", total=total)
        with _writing():
            self.writer.start(total)

    def write(self, users: Sequence[bulk.ExportedUser]) -> None:
        with _writing():
            self.writer.write(users)
        if self.bar is not None:
            self.bar.update(len(users))

    def finish(self) -> None:
        with _writing():
            self.writer.finish()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def export_users(args: argparse.Namespace, settings: Settings) -> int:
    path = args.output if args.output not in (None, "-") else None
    where = path or "standard output"
    started = time.monotonic()
    _few_collections()
    try:
        fmt = bulkfiles.format_of(path, args.format or (None if path else "ndjson"))
        with _output(path) as out:
            progress = _ExportProgress(bulkfiles.RecordWriter(out, fmt))
            try:
                count = _run(
                    settings, lambda database: _export(database, progress, args.batch_size)
                )
                progress.finish()
            finally:
                progress.close()
    except bulkfiles.FileFormatError as exc:
        print(f"grouped-users: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other filters do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except _WriteFailed as exc:
        print(f"grouped-users: cannot write {where}: {exc}", file=sys.stderr)
        return 2
    if path is not None:
        seconds = time.monotonic() - started
        print(f"exported {_counted(count, 'user')} to {path} in {seconds:.1f} s", file=sys.stderr)
    return 0


async def _export(database: Database, sink: _ExportProgress, batch_size: int) -> int:
    async with database.reader() as session:
        return await bulk.export_users(session, sink=sink, batch_size=batch_size)


class _WriteFailed(Exception):
    """Writing the export failed (a full disk, say); not the database."""


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _WriteFailed(exc.strerror or str(exc)) from exc


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    """Standard output, or a file that appears whole once the export is done."""
    if path is None:
        with open(sys.stdout.fileno(), "w", encoding="utf-8", newline="", closefd=False) as out:
            yield out
        return
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        with _writing():
            out = partial.open("w", encoding="utf-8", newline="")
        try:
            yield out
        finally:
            with _writing():
                out.close()
        with _writing():
            partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


# Past this, a count is a typo: it would only exhaust memory, or overflow
# islice() and the databases' 64-bit integers into a traceback.
MAX_COUNT = 10_000_000


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_COUNT:,}, not {text}")
    return value


def _timestamp(text: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, not {text!r}") from None


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
    log.add_argument("--limit", type=_positive, default=100, help="entries at most (100)")
    log.add_argument("--resource", help="only this resource, e.g. users/jsmith")
    log.add_argument("--actor", help="only changes by this actor")
    log.add_argument(
        "--since", type=_timestamp, help="ISO 8601 date-time, e.g. 2024-05-01T12:00:00Z (UTC)"
    )
    log.set_defaults(handler=audit_list)

    load = commands.add_parser(
        "import",
        help="import user records from a JSON, NDJSON or CSV file, all or nothing",
        description="Import user records (the API's record, userid required) from FILE: "
        "a JSON array, NDJSON (one record a line) or CSV (userid,first_name,last_name,groups "
        "with groups separated by ';'). Every row is checked first; if any is bad, nothing "
        "is stored and the bad rows are listed with their line numbers.",
    )
    load.add_argument("file", metavar="FILE", help="the file to read; - for standard input")
    load.add_argument("--format", choices=bulkfiles.FORMATS, help="default: by extension")
    load.add_argument(
        "--create-groups", action="store_true", help="create the groups that do not exist"
    )
    load.add_argument(
        "--replace", action="store_true", help="overwrite users that exist (as PUT would)"
    )
    load.add_argument(
        "--batch-size",
        type=_positive,
        default=bulk.DEFAULT_BATCH_SIZE,
        help=f"rows written per statement ({bulk.DEFAULT_BATCH_SIZE:,})",
    )
    load.add_argument(
        "--report-limit",
        type=_positive,
        default=bulk.DEFAULT_REPORT_LIMIT,
        help=f"bad rows listed at most ({bulk.DEFAULT_REPORT_LIMIT})",
    )
    load.set_defaults(handler=import_users)

    dump = commands.add_parser(
        "export",
        help="export every user record, in userid order",
        description="Write every user record, sorted by userid with sorted groups, as "
        "JSON, NDJSON or CSV, to standard output or --output FILE.",
    )
    dump.add_argument(
        "--format", choices=bulkfiles.FORMATS, help="default: by --output's extension, else ndjson"
    )
    dump.add_argument("--output", "-o", metavar="FILE", help="default: standard output")
    dump.add_argument(
        "--batch-size",
        type=_positive,
        default=bulk.DEFAULT_BATCH_SIZE,
        help=f"rows fetched at a time ({bulk.DEFAULT_BATCH_SIZE:,})",
    )
    dump.set_defaults(handler=export_users)

    from app import cli_webhooks  # it uses this module's helpers

    cli_webhooks.add_commands(commands)
    return root


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:
        sys.exit(f"grouped-users: {exc}")
    database = settings.sqlite_path()
    problem = datadir.unwritable(database) if database is not None else None
    if problem is not None:
        sys.exit(f"grouped-users: {problem}")
    try:
        sys.exit(args.handler(args, settings))
    except DomainError as exc:
        sys.exit(f"grouped-users: {exc.detail}")
