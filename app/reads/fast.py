"""The fast reader: SQLite point lookups without a thread hop.

aiosqlite runs every statement on a thread of its own, so a lookup costs a
pool checkout, BEGIN, the statement, COMMIT and a reset, each a hop between
threads: most of a request's time. An indexed lookup in SQLite itself takes
microseconds, less than those hops, so one read-only connection per process
answers indexed point lookups on the event loop's own thread. Each runs in
autocommit mode, so it sees exactly the data committed when it starts (WAL
readers never wait for writers), and never holds a transaction open. A read
that can scan must not come here: it would stop the loop while it runs.

Even an indexed read can be large (the member list of a group of 100,000),
so each read here has a budget of time on the loop (LOOP_BUDGET_SECONDS): a
progress handler stops one that runs over it, and the caller runs it again
on the driver's thread (TooLongForTheLoop). The loop is thus never held by
one read for more than about the budget, whatever the data.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import ClauseElement

# The key under which a reader session carries the FastReader (Session.info).
FAST_READER = "grouped_users_fast_reader"

_DIALECT = sqlite.dialect(paramstyle="named")
CACHE_KIB = 8192
# The longest a read may hold the event loop before it is stopped and run on
# the driver's thread instead: a few hundred point lookups' worth, far above
# any of them, well below what would delay the loop's other requests.
LOOP_BUDGET_SECONDS = 0.005
# SQLite calls the progress handler every this many virtual machine steps
# (some microseconds): a point lookup takes fewer and never calls it.
_PROGRESS_STEPS = 1000


class TooLongForTheLoop(Exception):
    """The read ran over its budget on the loop and was stopped; run it elsewhere."""


def compile_sqlite(statement: ClauseElement) -> str:
    """The statement as SQLite SQL with :named parameters, compiled once.

    Only the SQL is kept, so a parameter that carries its own value (a
    literal SQLAlchemy bound, such as a LIMIT or OFFSET given as a number)
    would be missing when it runs: refused here, at import, not per request.
    """
    compiled = statement.compile(dialect=_DIALECT)
    preset = sorted(name for name, value in compiled.params.items() if value is not None)
    if preset:
        raise ValueError(f"parameters with values of their own would be lost: {preset}")
    return str(compiled)


# A row's converters, one per column (None: the value is right as it comes).
Converters = tuple[Callable[[Any], Any] | None, ...] | None


def result_converters(
    statement: Select[*tuple[Any, ...]], dialect: Dialect = _DIALECT
) -> Converters:
    """How to turn the driver's values into those SQLAlchemy would give.

    The sqlite3 module hands back what is stored (a DateTime is ISO text);
    the types' own result processors make them Python values again, so a
    read answers the same whichever path ran it (asyncpg's, on PostgreSQL).
    None when no column needs one, which is every hot read: nothing is
    done per row then.
    """
    converters = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None)
        for column in statement.selected_columns
    )
    return converters if any(converters) else None


class FastReader:
    def __init__(self, path: Path, *, busy_timeout_ms: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._connection: sqlite3.Connection | None = None
        self.budget_seconds = LOOP_BUDGET_SECONDS
        self._deadline = 0.0
        # Called with (sql, parameters) before each statement; tests count them.
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []

    def _connect(self) -> sqlite3.Connection:
        # Opened on first use: the file exists by then (migrations made it).
        connection = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
        connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        # 8 MiB of page cache instead of SQLite's 2 MiB: fewer pages read
        # from the OS per lookup (a few percent of a lookup), at a cost in
        # memory kept well under the 150 MB per worker of the target.
        connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        connection.execute("PRAGMA query_only = ON")
        connection.set_progress_handler(self._over_budget, _PROGRESS_STEPS)
        return connection

    def _over_budget(self) -> bool:
        return time.perf_counter() > self._deadline

    def rows(self, sql: str, parameters: dict[str, Any]) -> Sequence[tuple[Any, ...]]:
        for listener in self.listeners:
            listener(sql, parameters)
        if self._connection is None:
            self._connection = self._connect()
        self._deadline = time.perf_counter() + self.budget_seconds
        try:
            return self._connection.execute(sql, parameters).fetchall()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname == "SQLITE_INTERRUPT":
                raise TooLongForTheLoop() from exc
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
