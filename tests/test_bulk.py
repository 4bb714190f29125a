"""Bulk import and export: JSON, NDJSON and CSV, all or nothing.

The command runs as a real process on private databases (SQLite files, and
PostgreSQL databases created for the test); the file readers and the service
also run in-process, on the `database` fixture.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import random
import shutil
import struct
import subprocess
import sys
import termios
import threading
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import func, make_url, select, text

from app import bulkfiles
from app.auth import Actor, Role
from app.db import Database, create_database
from app.migrations import upgrade
from app.models import AuditEntry, Group, Membership, User
from app.repository import groups as group_repo
from app.repository import users as user_repo
from app.schemas import UserRecordIn
from app.service import bulk, listing, users
from app.settings import Settings
from tests.support.live_server import admin, postgres_server

pytestmark = pytest.mark.anyio

COMMAND_TIMEOUT = 180.0
OPERATOR = Actor("tests", Role.admin)
FORMATS = ["json", "ndjson", "csv"]
# Names that CSV has to quote, JSON has to escape, or that are far from ASCII.
AWKWARD_NAMES = [
    "Smith, Jr.",
    'Jean "JJ"',
    '"Quoted", twice',
    "O'Brien",
    "back\\slash",
    " leading space",
    "trailing space ",
    "semi;colon",
    "=SUM(A1)",
    "Zoë",
    "Łukasz",
    "Ἀλέξανδρος",
    "Дмитрий",
    "李小龍",
    "محمد",
    "राजेश",
    "😀 Emoji",
    "e\u0301 combining",
    "line\u2028separator",
    "Straße",
]


# --- a generated directory and the files it makes ---


def directory(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Users in random order, most in 1-3 small groups, everyone in one huge group."""
    rng = random.Random(seed)
    teams = [f"team-{index:02d}" for index in range(40)]
    records = []
    for index in range(count):
        groups = ["everyone", *rng.sample(teams, rng.choice((0, 1, 1, 2, 3)))]
        if index % 3 == 0:
            groups.append("staff")
        rng.shuffle(groups)
        records.append(
            {
                "first_name": rng.choice(AWKWARD_NAMES),
                "last_name": f"{rng.choice(AWKWARD_NAMES)} {index}",
                "userid": f"u{rng.randrange(10**9):09d}.{index}",
                "groups": groups,
            }
        )
    return records


def exported(records: Iterable[dict[str, Any]], fmt: str) -> bytes:
    """The export of these records as the README describes it, built independently."""
    ordered = sorted(
        ({**record, "groups": sorted(record.get("groups", []))} for record in records),
        key=lambda record: str(record["userid"]),
    )
    return encode(ordered, fmt)


def encode(records: Sequence[dict[str, Any]], fmt: str) -> bytes:
    """Records as a file in this format (keys in the record's order, as the export writes them)."""
    order = ("first_name", "last_name", "userid", "groups")
    shaped = [{key: record[key] for key in order if key in record} for record in records]
    lines = [json.dumps(record, ensure_ascii=False) for record in shaped]
    if fmt == "ndjson":
        return "".join(line + "\n" for line in lines).encode()
    if fmt == "json":
        return ("[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n").encode()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        groups = record.get("groups", [])
        writer.writerow(
            [record.get("userid", ""), record["first_name"], record["last_name"], ";".join(groups)]
        )
    return out.getvalue().encode()


CSV_COLUMNS = ("userid", "first_name", "last_name", "groups")


# --- databases and the command ---


@dataclass
class Databases:
    """Empty, migrated databases of one kind, made on demand and dropped afterwards."""

    kind: str
    folder: Path
    template: Path | None
    server: str = ""
    made: list[str] = field(default_factory=list)

    async def new(self) -> str:
        if self.template is not None:
            path = self.folder / f"bulk-{len(self.made)}.db"
            shutil.copy(self.template, path)
            self.made.append(str(path))
            return f"sqlite:///{path}"
        name = f"grouped_users_bulk_{uuid.uuid4().hex[:12]}"
        await admin(self.server, f'CREATE DATABASE "{name}"')
        self.made.append(name)
        url = make_url(self.server).set(database=name).render_as_string(hide_password=False)
        async with opened(url) as database:
            await upgrade(database.engine)
        return url

    async def drop(self) -> None:
        if self.template is None:
            for name in self.made:
                await admin(self.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
async def databases(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> AsyncIterator[Databases]:
    if request.param == "sqlite":
        made = Databases("sqlite", tmp_path, sqlite_template)
    else:
        made = Databases("postgresql", tmp_path, None, postgres_server())
    try:
        yield made
    finally:
        await made.drop()


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Database]:
    database = create_database(Settings(database_url=url))
    try:
        yield database
    finally:
        await database.dispose()


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: bytes
    stderr: str


async def grouped_users(url: str, *args: str, stdin: bytes | None = None) -> Done:
    """Run the command as a person would, in a pipe."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GROUPED_USERS_") and key != "DATABASE_URL"
    }
    env["GROUPED_USERS_DATABASE_URL"] = url
    with anyio.fail_after(COMMAND_TIMEOUT):
        done = await anyio.run_process(
            [sys.executable, "-m", "app", *args], input=stdin, env=env, check=False
        )
    return Done(done.returncode, done.stdout, done.stderr.decode())


@dataclass(frozen=True)
class Contents:
    users: dict[str, tuple[str, str, int]]
    groups: dict[str, int]
    memberships: int
    audit: list[tuple[str, str, str, Any]]


async def contents(url: str) -> Contents:
    """Everything stored, read straight from the tables."""
    async with opened(url) as database, database.engine.connect() as connection:
        found_users = await connection.execute(
            select(User.userid, User.first_name, User.last_name, User.version)
        )
        found_groups = await connection.execute(select(Group.name, Group.version))
        memberships = await connection.scalar(select(func.count()).select_from(Membership))
        audit = await connection.execute(
            select(
                AuditEntry.actor, AuditEntry.action, AuditEntry.resource, AuditEntry.after
            ).order_by(AuditEntry.id)
        )
        return Contents(
            {userid: (first, last, version) for userid, first, last, version in found_users},
            dict(found_groups.all()),
            int(memberships or 0),
            [(actor, action, resource, after) for actor, action, resource, after in audit],
        )


async def seed(url: str, records: list[dict[str, Any]], *, create_groups: bool = True) -> None:
    """Import records in-process, through the same service as the command."""
    data = encode(records, "ndjson")
    async with opened(url) as database, database.writer() as session:
        await bulk.import_users(
            session,
            actor=OPERATOR,
            rows=bulkfiles.read_rows(io.BytesIO(data), "ndjson"),
            create_groups=create_groups,
        )


def write(folder: Path, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


def read(path: str) -> bytes:
    return Path(path).read_bytes()


def assert_reported(stderr: str, expected: dict[str, str]) -> None:
    """Each 'line N' (or 'element N') of `expected` is reported with its reason, no other."""
    reported = {
        line.split(":", 1)[0].split(" [", 1)[0]: line
        for line in stderr.splitlines()
        if line.startswith(("line ", "element "))
    }
    assert set(reported) == set(expected), stderr
    numbers = [int(place.split()[1]) for place in reported]
    assert numbers == sorted(numbers), "in the file's order"
    for place, reason in expected.items():
        assert reason in reported[place], (place, reported[place])


# --- the command, end to end ---


@pytest.mark.parametrize("fmt", FORMATS)
async def test_round_trip_is_byte_identical(databases: Databases, tmp_path: Path, fmt: str) -> None:
    records = directory(3000)
    first, second = await databases.new(), await databases.new()
    await seed(first, records)

    out = str(tmp_path / f"first.{fmt}")
    done = await grouped_users(first, "export", "--output", out)
    assert done.returncode == 0, done.stderr
    assert f"exported 3,000 users to {out}" in done.stderr
    assert read(out) == exported(records, fmt)

    done = await grouped_users(second, "import", out, "--create-groups")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith(f"imported 3,000 users from {out} (42 groups created")

    again = await grouped_users(second, "export", "--format", fmt)
    assert again.returncode == 0, again.stderr
    assert again.stdout == read(out)

    # What the API shows of the imported directory.
    async with opened(second) as database:
        async with database.reader() as session:
            page = await listing.list_groups(session, limit=100)
        sizes = {group.name: group.member_count for group in page.items}
        assert sizes["everyone"] == 3000
        assert sizes["staff"] == 1000
        some = records[17]
        async with database.reader() as session:
            shown = await users.get_user(session, userid=some["userid"])
        assert json.loads(shown.value) == {**some, "groups": sorted(some["groups"])}
    stored = await contents(second)
    assert {version for *_, version in stored.users.values()} == {1}
    assert sum(len(record["groups"]) for record in records) == stored.memberships


@pytest.mark.parametrize("fmt", FORMATS)
async def test_bad_rows_are_reported_by_line_and_nothing_is_stored(
    databases: Databases, tmp_path: Path, fmt: str
) -> None:
    good = {"first_name": "Ann", "last_name": "Lee", "groups": ["staff"]}
    rows: list[dict[str, Any]] = [
        {**good, "userid": "ann"},
        {**good, "userid": "Bad Name"},
        {**good, "userid": "bob"},
        {**good, "userid": "cid", "first_name": ""},
        {**good, "userid": "dan", "groups": ["staff", "ops", "staff"]},
        {**good, "userid": "eve", "last_name": "bell\x07"},
        {"first_name": "No", "last_name": "Userid"},
        {**good, "userid": "fay", "groups": ["Not Valid"]},
        {**good, "userid": "gus"},
    ]
    expected = {
        2: "userid: 'Bad Name' must be 1-64 characters",
        4: "first_name: must be 1-256 characters with no control characters",
        5: "groups[2]: 'staff' is listed more than once",
        6: "last_name: must be 1-256 characters with no control characters",
        7: "userid: is required",
        8: "groups[0]: 'Not Valid' must be 1-64 characters",
    }
    data = encode(rows, fmt)
    place = "element" if fmt == "json" else "line"
    # Past the header, each CSV record is a line further down.
    shift = 1 if fmt == "csv" else 0
    if fmt == "ndjson":
        data += b'{"userid": "hal", "first_name": "H", "last_name": "L", "email": "h@x"}\n'
        data += b'{"userid": "ivy", "first_name": \n'
        expected |= {10: "email: is not a field of a user record", 11: "Invalid JSON"}
    elif fmt == "csv":
        data += b"jan,Jan,Lee,staff,extra\n"
        expected |= {10: "has 5 fields where the header names 4"}
    else:
        data = data.replace(b'"userid": "gus"', b'"userid": 5')
        expected |= {9: "userid: Input should be a valid string"}

    url = await databases.new()
    path = write(tmp_path, f"users.{fmt}", data)
    done = await grouped_users(url, "import", path, "--create-groups")
    assert done.returncode == 1
    assert "nothing was imported" in done.stderr
    assert_reported(
        done.stderr, {f"{place} {line + shift}": reason for line, reason in expected.items()}
    )
    assert "Traceback" not in done.stderr
    assert done.stdout == b""
    assert await contents(url) == Contents({}, {}, 0, [])


async def test_the_report_shows_the_first_bad_rows_and_counts_the_rest(
    databases: Databases, tmp_path: Path
) -> None:
    rows = [{"userid": f"U{index}", "first_name": "A", "last_name": "B"} for index in range(250)]
    url = await databases.new()
    path = write(tmp_path, "users.ndjson", encode(rows, "ndjson"))
    done = await grouped_users(url, "import", path, "--report-limit", "20")
    assert done.returncode == 1
    assert "250 rows are bad" in done.stderr
    assert_reported(done.stderr, {f"line {n}": "userid: 'U" for n in range(1, 21)})
    assert "and 230 more" in done.stderr


async def test_unknown_groups_are_created_only_when_asked(
    databases: Databases, tmp_path: Path
) -> None:
    url = await databases.new()
    await seed(url, [{"userid": "ann", "first_name": "A", "last_name": "B", "groups": ["staff"]}])
    rows = [
        {"userid": "bob", "first_name": "B", "last_name": "C", "groups": ["staff", "ops"]},
        {"userid": "cid", "first_name": "C", "last_name": "D", "groups": ["dev", "ops"]},
    ]
    path = write(tmp_path, "users.csv", encode(rows, "csv"))

    refused = await grouped_users(url, "import", path)
    assert refused.returncode == 1
    assert_reported(
        refused.stderr,
        {
            "line 2": "groups[1]: group 'ops' does not exist",
            "line 3": "groups[0]: group 'dev' does not exist; groups[1]: group 'ops' does not",
        },
    )
    assert "--create-groups creates the groups that do not exist" in refused.stderr
    before = await contents(url)
    assert set(before.users) == {"ann"}
    assert set(before.groups) == {"staff"}

    done = await grouped_users(url, "import", path, "--create-groups")
    assert done.returncode == 0, done.stderr
    assert "(2 groups created: dev, ops)" in done.stdout.decode()
    after = await contents(url)
    assert set(after.users) == {"ann", "bob", "cid"}
    # staff gained a member: its version (ETag) moved on; new groups start at 1.
    assert after.groups == {"staff": before.groups["staff"] + 1, "dev": 1, "ops": 1}
    assert after.memberships == 5
    actor, action, resource, entry = after.audit[-1]
    assert (action, resource) == ("bulk.import", "users")
    assert actor.startswith("cli:")
    assert entry == {"users": 2, "groups_created": ["dev", "ops"]}
    assert len(after.audit) == len(before.audit) + 1


async def test_a_userid_twice_in_the_file_is_refused(databases: Databases, tmp_path: Path) -> None:
    rows = [
        {"userid": userid, "first_name": "A", "last_name": str(index)}
        for index, userid in enumerate(["ann", "bob", "cid", "bob", "dan", "eve", "ann", "fay"])
    ]
    url = await databases.new()
    path = write(tmp_path, "users.ndjson", encode(rows, "ndjson"))
    # Batches of 3: "bob" twice in one batch, "ann" in two.
    done = await grouped_users(url, "import", path, "--batch-size", "3")
    assert done.returncode == 1
    assert_reported(
        done.stderr,
        {
            "line 4": "userid 'bob' is listed earlier in this file",
            "line 7": "userid 'ann' is listed earlier in this file",
        },
    )
    assert (await contents(url)).users == {}


async def test_existing_users_are_refused_or_replaced(databases: Databases, tmp_path: Path) -> None:
    url = await databases.new()
    await seed(
        url,
        [
            {"userid": "ann", "first_name": "Ann", "last_name": "Lee", "groups": ["staff"]},
            {"userid": "bob", "first_name": "Bob", "last_name": "Ray", "groups": ["ops"]},
        ],
    )
    before = await contents(url)
    rows = [
        {"userid": "ann", "first_name": "Ann", "last_name": "Lee", "groups": ["staff"]},
        {"userid": "bob", "first_name": "Bob", "last_name": "Kay", "groups": ["staff"]},
        {"userid": "cid", "first_name": "Cid", "last_name": "Day", "groups": []},
    ]
    path = write(tmp_path, "users.json", encode(rows, "json"))

    refused = await grouped_users(url, "import", path)
    assert refused.returncode == 1
    assert_reported(
        refused.stderr,
        {"element 1": "user 'ann' already exists", "element 2": "user 'bob' already exists"},
    )
    assert "--replace overwrites the users that exist" in refused.stderr
    assert await contents(url) == before

    done = await grouped_users(url, "import", path, "--replace")
    assert done.returncode == 0, done.stderr
    assert "(1 created, 1 replaced, 1 unchanged)" in done.stdout.decode()
    after = await contents(url)
    # As PUT: an unchanged record keeps its version, a changed one moves on,
    # and so do the groups it left and joined.
    assert after.users == {
        "ann": ("Ann", "Lee", 1),
        "bob": ("Bob", "Kay", 2),
        "cid": ("Cid", "Day", 1),
    }
    assert after.groups == {"staff": before.groups["staff"] + 1, "ops": before.groups["ops"] + 1}
    async with opened(url) as database, database.reader() as session:
        bob = await users.get_user(session, userid="bob")
        assert json.loads(bob.value)["groups"] == ["staff"]
        page = await listing.list_users(session, limit=10, q="kay")
        assert [json.loads(user)["userid"] for user in page.items] == ["bob"]
    assert after.audit[-1][3] == {
        "users": 2,
        "groups_created": [],
        "replaced": 1,
        "unchanged": 1,
    }

    twice = write(tmp_path, "twice.ndjson", encode([rows[0], rows[0]], "ndjson"))
    done = await grouped_users(url, "import", twice, "--replace")
    assert done.returncode == 1
    assert_reported(done.stderr, {"line 2": "userid 'ann' is listed earlier in this file"})


async def test_csv_quoting(databases: Databases, tmp_path: Path) -> None:
    records = [
        {"userid": f"user{index}", "first_name": name, "last_name": name[::-1], "groups": []}
        for index, name in enumerate(AWKWARD_NAMES)
    ]
    data = exported(records, "csv")
    # Commas and quotes are quoted, a "" is a quote; the U+2028 in a name is no line break.
    assert b'"Smith, Jr."' in data
    assert b'"Jean ""JJ"""' in data
    assert data.count(b"\n") == len(records) + 1
    url = await databases.new()
    path = write(tmp_path, "users.csv", data)
    done = await grouped_users(url, "import", path)
    assert done.returncode == 0, done.stderr
    again = await grouped_users(url, "export", "--format", "csv")
    assert again.stdout == data


def test_csv_line_numbers_count_the_lines_inside_quotes() -> None:
    # A quoted field may hold a line break: the record still counts as one
    # row (refused: a name holds no control character), and the records after
    # it are numbered by the file's lines.
    rows = rows_of(
        b"userid,first_name,last_name,groups\n"
        b'amy,"two\nlines",Lee,\n'
        b"ben,Ben,Lee,\n"
        b"Bad,Ben,Lee,\n"
        b'cat,"unclosed,Lee,\n',
        "csv",
    )
    assert [(row.line, row.userid, row.problem) for row in rows] == [
        (2, "amy", "first_name: must be 1-256 characters with no control characters"),
        (4, "ben", None),
        (
            5,
            "Bad",
            "userid: 'Bad' must be 1-64 characters from a-z, 0-9, '.', '_', '-' and "
            "'@', starting with a letter or digit",
        ),
        (6, None, "malformed CSV: unexpected end of data"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_checks_the_same_rules(fmt: str) -> None:
    records: list[dict[str, Any]] = [
        {"userid": "u1", "first_name": "Zoë", "last_name": "李", "groups": ["ä-team"]},
        {"userid": "u2", "first_name": "bell\x07", "last_name": "B", "groups": []},
        {"userid": "u3", "first_name": "x" * 257, "last_name": "B", "groups": []},
        {"userid": "u4", "first_name": "😀", "last_name": "e\u0301", "groups": ["a", "a"]},
        {"userid": "u5", "first_name": "\u2028", "last_name": "Straße", "groups": ["ok"]},
    ]
    rows = rows_of(encode(records, fmt), fmt)
    assert [row.problem for row in rows] == [
        "groups[0]: 'ä-team' must be 1-64 characters from a-z, 0-9, '.', '_', '-' and '@', "
        "starting with a letter or digit",
        "first_name: must be 1-256 characters with no control characters",
        "first_name: must be 1-256 characters with no control characters",
        "groups[1]: 'a' is listed more than once",
        None,
    ]
    assert rows[4].record == UserRecordIn.model_validate(records[4])


async def test_unicode_names(databases: Databases, tmp_path: Path) -> None:
    records = [
        {"userid": f"u{index}", "first_name": name, "last_name": "Ünïcödé", "groups": ["team"]}
        for index, name in enumerate(AWKWARD_NAMES)
    ]
    url = await databases.new()
    path = write(tmp_path, "users.csv", encode(records, "csv"))
    done = await grouped_users(url, "import", path, "--create-groups")
    assert done.returncode == 0, done.stderr
    stored = (await contents(url)).users
    assert stored == {record["userid"]: (record["first_name"], "Ünïcödé", 1) for record in records}
    again = await grouped_users(url, "export", "--format", "json")
    assert again.stdout == exported(records, "json")
    # Searches ignore case in any script, as for users created over HTTP.
    async with opened(url) as database, database.reader() as session:
        page = await listing.list_users(session, limit=10, q="STRASSE")
        assert [json.loads(user)["first_name"] for user in page.items] == ["Straße"]
        page = await listing.list_users(session, limit=10, q="дмитрий")
        assert [json.loads(user)["first_name"] for user in page.items] == ["Дмитрий"]


async def test_standard_input_and_output(databases: Databases) -> None:
    records = directory(50)
    url = await databases.new()
    data = encode(records, "csv")
    done = await grouped_users(url, "import", "-", "--format", "csv", "--create-groups", stdin=data)
    assert done.returncode == 0, done.stderr
    assert "from standard input" in done.stdout.decode()
    default = await grouped_users(url, "export")
    assert default.stdout == exported(records, "ndjson")
    assert default.stderr == ""


async def test_refusals_before_any_row(tmp_path: Path, sqlite_template: Path) -> None:
    shutil.copy(sqlite_template, tmp_path / "any.db")
    url = f"sqlite:///{tmp_path / 'any.db'}"
    unnamed = await grouped_users(url, "import", "-", stdin=b"[]")
    assert unnamed.returncode == 2
    assert "--format" in unnamed.stderr
    unknown = await grouped_users(url, "export", "--output", str(tmp_path / "users.txt"))
    assert unknown.returncode == 2
    assert "cannot tell the format" in unknown.stderr
    missing = await grouped_users(url, "import", "no-such-file.ndjson")
    assert missing.returncode == 2
    assert "cannot read no-such-file.ndjson" in missing.stderr
    nowhere = await grouped_users(url, "export", "--output", str(tmp_path / "no" / "x.csv"))
    assert nowhere.returncode == 2
    assert "cannot write" in nowhere.stderr
    for done in (unnamed, unknown, missing, nowhere):
        assert "Traceback" not in done.stderr


async def test_no_progress_bar_in_a_pipe(databases: Databases, tmp_path: Path) -> None:
    records = directory(300)
    url = await databases.new()
    path = write(tmp_path, "users.ndjson", encode(records, "ndjson"))
    done = await grouped_users(url, "import", path, "--create-groups", "--batch-size", "7")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = str(tmp_path / "out.csv")
    exported_ = await grouped_users(url, "export", "--output", out, "--batch-size", "7")
    assert exported_.returncode == 0, exported_.stderr
    # Only the closing line: no bar, no carriage returns.
    assert exported_.stderr.startswith(f"exported 300 users to {out} in ")
    assert len(exported_.stderr.splitlines()) == 1
    assert "\r" not in exported_.stderr
    assert read(out) == exported(records, "csv")


async def test_a_progress_bar_on_a_terminal(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "tty.db"
    shutil.copy(sqlite_template, path)
    file = write(tmp_path, "users.ndjson", encode(directory(2000), "ndjson"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("GROUPED_USERS_")}
    env["GROUPED_USERS_DATABASE_URL"] = f"sqlite:///{path}"
    commands = [
        ["import", file, "--create-groups", "--batch-size", "100"],
        ["export", "--output", str(tmp_path / "out.json")],
    ]
    terminal = await anyio.to_thread.run_sync(_on_a_terminal, commands, env)
    assert "import: 100%" in terminal
    assert "2,000 rows" in terminal
    assert "rows/s" in terminal
    assert "export: 100%" in terminal
    assert "2.00k/2.00k" in terminal


def _on_a_terminal(commands: list[list[str]], env: dict[str, str]) -> str:
    """What the commands write to stderr when it is a terminal (80 columns)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    shown: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is closed
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for args in commands:
            done = subprocess.run(
                [sys.executable, "-m", "app", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=follower,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            assert done.returncode == 0
    finally:
        os.close(follower)
        reader.join(timeout=10)
        os.close(leader)
    return b"".join(shown).decode()


# --- the readers, in-process ---


def rows_of(data: bytes, fmt: str) -> list[bulk.ImportRow]:
    return list(bulkfiles.read_rows(io.BytesIO(data), fmt))


def test_format_by_extension_or_flag() -> None:
    assert bulkfiles.format_of("a/users.JSON", None) == "json"
    assert bulkfiles.format_of("users.jsonl", None) == "ndjson"
    assert bulkfiles.format_of("users.csv", "ndjson") == "ndjson"
    for path in ("users.txt", "users", "-", None):
        with pytest.raises(bulkfiles.FileFormatError):
            bulkfiles.format_of(path, None)
    with pytest.raises(bulkfiles.FileFormatError):
        bulkfiles.format_of("users.csv", "xml")


def test_a_json_array_is_read_across_chunks() -> None:
    long_name = "x" * 200
    records = [
        {"userid": f"u{index}", "first_name": long_name, "last_name": "é" * 100, "groups": []}
        for index in range(1500)
    ]
    # Elements and whitespace of every length cross the reader's 64 KiB chunks.
    data = "[" + "".join(
        (" " * (index % 7)) + json.dumps(record) + ("\n," if index < 1499 else "\t]\n")
        for index, record in enumerate(records)
    )
    rows = rows_of(data.encode(), "json")
    assert [row.line for row in rows] == list(range(1, 1501))
    assert [row.record.userid if row.record else row.problem for row in rows] == [
        record["userid"] for record in records
    ]
    assert rows_of(b"  [ ]  ", "json") == []
    assert rows_of(b"\xef\xbb\xbf[]", "json") == []


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [
        (b"", 1, "holds one array of user records"),
        (b'{"userid": "a"}', 1, "holds one array of user records"),
        (b'[{"userid": "a", "first_name": "A", "last_name": "B"},', 1, "ends inside the array"),
        (b'[{"userid": "a", "first_name": "A", "last_name": "B"} {"x": 1}]', 1, "expected ','"),
        (
            b'[{"userid": "a", "first_name": "A", "last_name": "B"}, {"userid": tru}]',
            2,
            "malformed",
        ),
        (b'[{"userid": "a", "first_name": "A", "last_name": "B"}] []', 1, "more after the array"),
        (b'[{"userid": "a", "first_name": "A", "last_name": "\xff"}]', 1, "not UTF-8"),
    ],
)
def test_a_malformed_json_array_is_reported_where_it_breaks(
    data: bytes, line: int, problem: str
) -> None:
    last = rows_of(data, "json")[-1]
    assert last.line == line
    assert last.problem is not None
    assert problem in last.problem


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (b"userid,first_name,last_name,email", "unknown columns ['email']"),
        (b"userid,first_name", "lacks the columns ['last_name']"),
        (b"userid,userid,first_name,last_name", "names a column twice"),
        (b"", "header is missing"),
    ],
)
def test_csv_header_problems(header: bytes, problem: str) -> None:
    rows = rows_of(header + b"\nann,Ann,Lee,staff\n", "csv") if header else rows_of(b"", "csv")
    assert len(rows) == 1
    assert rows[0].line == 1
    assert rows[0].problem is not None
    assert problem in rows[0].problem


def test_csv_columns_in_any_order_and_groups_optional() -> None:
    rows = rows_of(
        b"\xef\xbb\xbflast_name,userid,first_name\r\nLee,ann,Ann\r\n\r\nRay,bob,Bob\r\n", "csv"
    )
    assert [(row.line, row.record) for row in rows] == [
        (2, UserRecordIn(userid="ann", first_name="Ann", last_name="Lee")),
        (4, UserRecordIn(userid="bob", first_name="Bob", last_name="Ray")),
    ]
    (row,) = rows_of(b"userid,first_name,last_name,groups\nann,A,B, staff ;ops\n", "csv")
    assert row.record is not None
    assert row.record.groups == ["staff", "ops"]


def test_ndjson_skips_blank_lines_and_keeps_counting() -> None:
    data = b'\xef\xbb\xbf{"userid": "a", "first_name": "A", "last_name": "B"}\n\n  \n'
    data += b'{"userid": "b", "first_name": "A", "last_name": "B"}\r\n'
    data += b'{"userid": "c", "first_name": "A", "last_name": 7}'
    rows = rows_of(data, "ndjson")
    assert [(row.line, row.userid) for row in rows] == [(1, "a"), (4, "b"), (5, "c")]
    assert rows[2].problem == "last_name: Input should be a valid string"


# --- the service, in-process ---


async def test_an_import_is_one_transaction_with_one_audit_entry(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An import this large refreshes PostgreSQL's statistics, in the transaction.
    monkeypatch.setattr(bulk, "_ANALYZE_AFTER", 100)
    async with database.writer() as session:
        await users.create_user(
            session,
            actor=OPERATOR,
            userid="ann",
            record=UserRecordIn(first_name="Ann", last_name="Lee"),
        )
    records = directory(120)
    data = encode(records, "ndjson")
    seen: list[int] = []
    async with database.writer() as session:
        result = await bulk.import_users(
            session,
            actor=OPERATOR,
            rows=bulkfiles.read_rows(io.BytesIO(data), "ndjson"),
            create_groups=True,
            batch_size=25,
            progress=seen.append,
        )
    assert seen == [25, 25, 25, 25, 20]
    assert result == bulk.ImportResult(
        120, 120, 0, 0, sorted({"everyone", "staff"} | teams(records))
    )
    async with database.reader() as session, session.begin():
        entries = (
            await session.execute(
                select(AuditEntry.action, AuditEntry.actor).order_by(AuditEntry.id)
            )
        ).all()
        assert entries == [("user.create", "tests"), ("bulk.import", "tests")]
        found = await user_repo.find(session, userid=records[0]["userid"])
        assert found is not None
        assert found.version == 1
        everyone = await group_repo.find(session, name="everyone")
        assert everyone is not None
        assert everyone.version == 1
        if database.dialect == "postgresql":
            planned = await session.scalar(
                text("SELECT reltuples FROM pg_class WHERE relname = 'memberships'")
            )
            assert planned == sum(len(record["groups"]) for record in records)

    # A refused import leaves everything as it was, however far it got.
    late = [*directory(60, seed=8), {"userid": "ann", "first_name": "A", "last_name": "B"}]
    with pytest.raises(bulk.ImportRefused) as refused:
        async with database.writer() as session:
            await bulk.import_users(
                session,
                actor=OPERATOR,
                rows=bulkfiles.read_rows(io.BytesIO(encode(late, "ndjson")), "ndjson"),
                create_groups=True,
                batch_size=10,
            )
    assert refused.value.count == 1
    assert refused.value.bad_rows == [
        bulk.BadRow(61, "ann", bulk.Reason.exists, "user 'ann' already exists")
    ]
    async with database.reader() as session, session.begin():
        assert await session.scalar(select(func.count()).select_from(User)) == 121
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 2


def teams(records: Iterable[dict[str, Any]]) -> set[str]:
    return {name for record in records for name in record["groups"] if name.startswith("team-")}


async def test_export_streams_in_batches(database: Database) -> None:
    records = directory(95)
    async with database.writer() as session:
        await bulk.import_users(
            session,
            actor=OPERATOR,
            rows=bulkfiles.read_rows(io.BytesIO(encode(records, "ndjson")), "ndjson"),
            create_groups=True,
        )

    @dataclass
    class Sink:
        total: int = -1
        batches: list[int] = field(default_factory=list)
        users: list[bulk.ExportedUser] = field(default_factory=list)

        def start(self, total: int) -> None:
            self.total = total

        def write(self, users: Sequence[bulk.ExportedUser]) -> None:
            self.batches.append(len(users))
            self.users.extend(users)

    sink = Sink()
    async with database.reader() as session:
        sent = await bulk.export_users(session, sink=sink, batch_size=20)
    assert (sent, sink.total) == (95, 95)
    assert sink.batches == [20, 20, 20, 20, 15]
    assert sink.users == [
        (record["userid"], record["first_name"], record["last_name"], sorted(record["groups"]))
        for record in sorted(records, key=lambda record: str(record["userid"]))
    ]
