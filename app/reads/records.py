"""Records and member lists as JSON text, built by the database.

The answer of the hottest reads is made in SQL: one row of text instead of
a row per group, a model and an encoder in Python. Its shape is that of
app.schemas.UserRecord, which this module reads its keys from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import InstrumentedAttribute

from app.models import Group, Membership, User
from app.schemas import UserRecord

# The record's keys, in the order the answer shows them: the schema's.
RECORD_FIELDS: tuple[str, ...] = tuple(UserRecord.model_fields)


def sorted_json_array(
    dialect_name: str,
    value: InstrumentedAttribute[str],
    on: ColumnElement[bool],
    where: ColumnElement[bool],
    outer: Any,
) -> ColumnElement[Any]:
    """`value` of every membership of the outer query's row, as a sorted JSON array.

    `value` is a column of the table memberships join to (`on`); `where`
    ties the memberships to the row of `outer`. The database builds the
    array itself (a group may have 100,000 members): no row, tuple or
    string is made per member here. It is [] when there are none.
    PostgreSQL orders inside the aggregate; SQLite (without aggregate
    ORDER BY before 3.44) aggregates an ordered subquery, in that order.
    """
    if dialect_name == "postgresql":
        aggregated = (
            select(func.json_agg(aggregate_order_by(value, value)))
            .join_from(Membership, value.class_, on)
            .where(where)
            .scalar_subquery()
        )
        return func.coalesce(aggregated, literal_column("'[]'::json"))
    ordered = (
        select(value.label("value"))
        .join(Membership, on)
        .where(where)
        .order_by(value)
        .correlate(outer)
        .subquery()
    )
    return select(func.json_group_array(ordered.c.value)).scalar_subquery()


def record_json(dialect_name: str) -> ColumnElement[str]:
    """The record of the outer query's user as JSON text, its groups sorted.

    A deactivated user's record shows no groups: the identity provider
    ended its group-based access, and the memberships stay stored for
    its reactivation.
    """
    groups = sorted_json_array(
        dialect_name,
        Group.name,
        on=Membership.group_id == Group.id,
        where=and_(Membership.user_id == User.id, User.active.is_(True)),
        outer=User,
    )
    columns = {"first_name": User.first_name, "last_name": User.last_name, "userid": User.userid}
    if dialect_name == "postgresql":
        return json_record(func.json_build_object, columns | {"groups": groups})
    # json() marks the array as JSON for json_object, also across the subquery.
    return json_record(func.json_object, columns | {"groups": func.json(groups)})


def json_record(build: Any, values: Mapping[str, Any]) -> ColumnElement[str]:
    """A UserRecord as JSON text, by the dialect's JSON object function (`build`).

    `values` maps each field of the record to its SQL value; the keys are
    written in the schema's order, and a field missing or unknown is an
    error at import, not a record of another shape.
    """
    if set(values) != set(RECORD_FIELDS):
        raise ValueError(f"a record has the fields {RECORD_FIELDS}, not {tuple(values)}")
    arguments: list[Any] = []
    for field in RECORD_FIELDS:
        arguments += [literal_column(f"'{field}'"), values[field]]
    return cast(build(*arguments), Text)
