"""app.reads.fast: statements compiled once for the fast reader."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select

from app.models import User
from app.reads.fast import compile_sqlite


def test_named_parameters_compile_to_sqlite_sql() -> None:
    statement = (
        select(User.id)
        .where(User.userid == bindparam("userid"))
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    sql = compile_sqlite(statement)
    assert [name in sql for name in (":userid", ":limit", ":offset")] == [True] * 3


def test_a_parameter_with_a_value_of_its_own_is_refused() -> None:
    # Only the SQL is kept: SQLAlchemy's literal LIMIT (and SQLite's OFFSET 0)
    # would be missing when the statement runs.
    with pytest.raises(ValueError, match="param_1"):
        compile_sqlite(select(User.id).where(User.userid == bindparam("userid")).limit(5))
