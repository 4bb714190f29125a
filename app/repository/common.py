"""What the query modules share: rows, long IN lists, dialect differences."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, any_, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.type_api import TypeEngine

# Statements here are bulk SQL: no ORM objects are loaded that the ORM would
# have to bring in line (it would otherwise fetch every deleted row back).
NO_SYNC: dict[str, Any] = {"synchronize_session": False}


@dataclass(frozen=True)
class UserRow:
    id: int
    userid: str
    first_name: str
    last_name: str
    version: int
    # SCIM's active: False hides the user's memberships from the core API.
    active: bool = True


@dataclass(frozen=True)
class GroupRow:
    id: int
    name: str
    version: int


def dialect(session: AsyncSession | Session) -> str:
    return session.get_bind().dialect.name


def in_list(
    session: AsyncSession | Session,
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    values: Collection[Any],
    type_: TypeEngine[Any],
) -> ColumnElement[bool]:
    """`column IN values` with one bound parameter, however long the list.

    An expanded IN list needs one parameter per value, and both drivers cap
    those at about 32,000: a group of 50,000 members would not fit.
    """
    if dialect(session) == "postgresql":
        return column == any_(literal(list(values), postgresql.ARRAY(type_)))
    each = func.json_each(literal(json.dumps(list(values)))).table_valued("value")
    return column.in_(select(each.c.value))


def insert_ignoring_duplicates(session: AsyncSession) -> Any:
    """The dialect's insert(), which can say ON CONFLICT DO NOTHING."""
    return postgresql.insert if dialect(session) == "postgresql" else sqlite.insert
