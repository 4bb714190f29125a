"""A generated, reproducible directory, and bulk seeding of it into SQLite or PostgreSQL.

Users are u0000000 .. u{N-1}; small groups g00000 .. g{G-1}; a few huge
groups (huge-0 with min(N, 100,000) members, huge-1 and huge-2 smaller);
and bench-put, created empty for the PUT /groups scenario. Most users are in
1-5 small groups. The same (N, G, seed) always gives the same directory.

The schema comes from `python -m app db upgrade`; rows go straight in with
bulk SQL (sqlite3 executemany, PostgreSQL COPY), not through the API.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

# Bump when the generated data changes: cached SQLite seeds carry it in their name.
GENERATOR_VERSION = 1

FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Chen", "Dmitri", "Élodie", "Fatima", "Grace", "Hiroshi",
    "Ingrid", "José", "Kwame", "Łucja", "Mei", "Nadia", "Olumide", "Priya", "Quentin",
    "Rosa", "Søren", "Tariq", "Úna", "Vera", "Wei", "Xóchitl", "Yuki", "Zoë", "Анна",
    "Иван", "李娜", "さくら", "Στέφανος",
)  # fmt: skip
LAST_NAMES = (
    "Abara", "Björk", "Castillo", "Dubois", "Eriksen", "Fernández", "García", "Hughes",
    "Ivanova", "Jónsson", "Kowalski", "López", "Müller", "Nakamura", "O'Brien", "Patel",
    "Quispe", "Rossi", "Smith", "Tanaka", "Uçar", "Van der Berg", "Wójcik", "Xu", "Yılmaz",  # noqa: RUF001
    "Zhang", "Петров", "王", "鈴木", "Παπαδόπουλος", "Smith-Jones", "Ng",
)  # fmt: skip
# How many small groups a user is in: most 1-5, a few none.
GROUPS_PER_USER = (0, 1, 2, 3, 4, 5)
GROUPS_PER_USER_WEIGHTS = (4, 20, 26, 24, 15, 11)
# The huge groups: name, members at most, share of all users at most.
HUGE_GROUPS = (("huge-0", 100_000, 1.0), ("huge-1", 50_000, 0.5), ("huge-2", 20_000, 0.2))
PUT_GROUP = "bench-put"


def userid(number: int) -> str:
    return f"u{number:07d}"


def group_name(number: int) -> str:
    return f"g{number:05d}"


@dataclass(frozen=True)
class Directory:
    users: int
    groups: int
    seed: int
    # (id, userid, first_name, last_name, search_names, version)
    user_rows: list[tuple[int, str, str, str, str, int]]
    # (id, name, version)
    group_rows: list[tuple[int, str, int]]
    # (group_id, user_id), sorted
    memberships: list[tuple[int, int]]
    # name -> member count
    huge: dict[str, int]

    @property
    def key(self) -> str:
        return f"n{self.users}-g{self.groups}-s{self.seed}-v{GENERATOR_VERSION}"


def generate(users: int, groups: int, seed: int = 7) -> Directory:
    """The directory for (users, groups, seed): the same every time."""
    if users < 1 or groups < 2:
        raise ValueError("need at least 1 user and 2 groups")
    rng = random.Random(seed)  # noqa: S311 - repeatable test data, no secret
    search: dict[tuple[str, str], str] = {}
    user_rows: list[tuple[int, str, str, str, str, int]] = []
    memberships: list[tuple[int, int]] = []
    small = range(groups)
    for number in range(users):
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        names = search.get((first, last))
        if names is None:
            names = search[first, last] = f"{first.casefold()}\n{last.casefold()}"
        user_id = number + 1
        user_rows.append((user_id, userid(number), first, last, names, 1))
        (count,) = rng.choices(GROUPS_PER_USER, GROUPS_PER_USER_WEIGHTS)
        # Small groups have ids 1 .. G.
        memberships.extend((group + 1, user_id) for group in rng.sample(small, count))
    group_rows = [(number + 1, group_name(number), 1) for number in small]
    huge: dict[str, int] = {}
    for name, most, share in HUGE_GROUPS:
        group_id = len(group_rows) + 1
        group_rows.append((group_id, name, 1))
        size = max(1, min(most, int(users * share)))
        huge[name] = size
        memberships.extend((group_id, number + 1) for number in rng.sample(range(users), size))
    group_rows.append((len(group_rows) + 1, PUT_GROUP, 1))
    memberships.sort()
    return Directory(users, groups, seed, user_rows, group_rows, memberships, huge)


def seed_sqlite(path: Path, directory: Directory) -> None:
    """Fill a migrated, empty SQLite database in one transaction."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute("PRAGMA cache_size = -1000000")
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO users (id, userid, first_name, last_name, search_names, version) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            directory.user_rows,
        )
        connection.executemany(
            "INSERT INTO groups (id, name, version) VALUES (?, ?, ?)", directory.group_rows
        )
        connection.executemany(
            "INSERT INTO memberships (group_id, user_id) VALUES (?, ?)", directory.memberships
        )
        connection.execute("COMMIT")
        # The app runs in WAL mode; the file is left whole, with no -wal beside it.
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


async def seed_postgres(url: str, directory: Directory) -> None:
    """Fill a migrated, empty PostgreSQL database with COPY, then VACUUM ANALYZE.

    url: a postgresql+asyncpg:// URL; COPY goes through the asyncpg connection.
    """
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            async with driver.transaction():
                await driver.copy_records_to_table(
                    "users",
                    records=directory.user_rows,
                    columns=["id", "userid", "first_name", "last_name", "search_names", "version"],
                )
                await driver.copy_records_to_table(
                    "groups", records=directory.group_rows, columns=["id", "name", "version"]
                )
                await driver.copy_records_to_table(
                    "memberships", records=directory.memberships, columns=["group_id", "user_id"]
                )
                # Explicit ids leave the id sequences behind: move them past.
                for table in ("users", "groups"):
                    await driver.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                        f"(SELECT max(id) FROM {table}))"
                    )
            # What autovacuum would soon do on its own (after so many inserts it
            # vacuums too): statistics, and the visibility map, without which
            # every index-only scan of a page of users (their memberships)
            # also reads the table's rows.
            await driver.execute("VACUUM ANALYZE")
    finally:
        await engine.dispose()
