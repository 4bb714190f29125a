"""Predicates (app.predicates) as SQL conditions on users and groups: never run in Python.

Every value reaches the database as a bound parameter; LIKE patterns are
escaped. Attributes that ignore case compare casefold()ed keys stored beside
them, so that any script compares alike on SQLite (whose lower() is ASCII
only) and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select, true

from app.models import Group, Membership, User, UserEmail
from app.predicates import And, Attribute, Collection, Not, Op, Or, Predicate, Present, Some
from app.sql import escape_like

Condition = ColumnElement[bool]
_Comparer = Callable[[Op, Any], Condition]


def _text_value(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a text attribute compared with {value!r}")
    if any(ord(char) < 32 for char in value):
        # No stored value holds a control character (every text is checked on
        # the way in), so the comparison matches as one with U+0001 would;
        # U+0001 stands in because PostgreSQL text cannot carry U+0000.
        return "\x01"
    return value


_PATTERNS = {Op.CONTAINS: "%{}%", Op.STARTS_WITH: "{}%", Op.ENDS_WITH: "%{}"}


def _text(column: Any, op: Op, value: str) -> Condition:
    """column <op> value for a text column whose stored form `value` is already in."""
    if op == Op.EQ:
        return column == value  # type: ignore[no-any-return]
    if op == Op.NE:
        return or_(column.is_(None), column != value)
    return column.like(_PATTERNS[op].format(escape_like(value)), escape="\\")  # type: ignore[no-any-return]


def _exact(column: Any) -> _Comparer:
    return lambda op, value: _text(column, op, _text_value(value))


def _folded(column: Any) -> _Comparer:
    return lambda op, value: _text(column, op, _text_value(value).casefold())


def _person_name(part: int) -> _Comparer:
    """First (0) or last (1) name over search_names: "first\\nlast", casefolded.

    Neither part holds a newline, so a pattern placed before or after the one
    newline matches in that part only.
    """

    def compare(op: Op, value: Any) -> Condition:
        v = escape_like(_text_value(value).casefold())
        if part == 0:
            patterns = {Op.EQ: f"{v}\n%", Op.STARTS_WITH: f"{v}%\n%", Op.ENDS_WITH: f"%{v}\n%"}
            patterns[Op.CONTAINS] = f"%{v}%\n%"
        else:
            patterns = {Op.EQ: f"%\n{v}", Op.STARTS_WITH: f"%\n{v}%", Op.ENDS_WITH: f"%\n%{v}"}
            patterns[Op.CONTAINS] = f"%\n%{v}%"
        column = User.search_names
        if op == Op.NE:
            return not_(column.like(patterns[Op.EQ], escape="\\"))
        return column.like(patterns[op], escape="\\")

    return compare


def _boolean(column: Any) -> _Comparer:
    def compare(op: Op, value: Any) -> Condition:
        if not isinstance(value, bool):
            raise TypeError(f"a boolean attribute compared with {value!r}")
        return column == value if op == Op.EQ else column != value  # type: ignore[no-any-return]

    return compare


_ORDER: dict[Op, Callable[[Any, Any], Condition]] = {
    Op.EQ: lambda a, b: a == b,
    Op.NE: lambda a, b: a != b,
    Op.GT: lambda a, b: a > b,
    Op.GE: lambda a, b: a >= b,
    Op.LT: lambda a, b: a < b,
    Op.LE: lambda a, b: a <= b,
}


def _moment(column: Any) -> _Comparer:
    def compare(op: Op, value: Any) -> Condition:
        if not isinstance(value, datetime):
            raise TypeError(f"a moment compared with {value!r}")
        return _ORDER[op](column, value)

    return compare


@dataclass(frozen=True)
class _Table:
    """How one resource's (or one collection's) attributes compare and test present."""

    compare: dict[Attribute, _Comparer]
    present: dict[Attribute, Condition]
    # A collection's attributes, and how a condition on one value becomes one on the resource.
    collections: dict[Collection, tuple[_Table, Callable[[Condition], Condition]]]

    def __call__(self, predicate: Predicate) -> Condition:
        if isinstance(predicate, And):
            return and_(*(self(term) for term in predicate.terms))
        if isinstance(predicate, Or):
            return or_(*(self(term) for term in predicate.terms))
        if isinstance(predicate, Not):
            return not_(self(predicate.term))
        if isinstance(predicate, Some):
            table, wrap = self.collections[predicate.collection]
            return wrap(table(predicate.where))
        if isinstance(predicate, Present):
            return self.present[predicate.attribute]
        return self.compare[predicate.attribute](predicate.op, predicate.value)


def _emails_of_user(condition: Condition) -> Condition:
    return exists(select(UserEmail.user_id).where(UserEmail.user_id == User.id, condition))


def _members_of_group(condition: Condition) -> Condition:
    return exists(
        select(Membership.user_id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.group_id == Group.id, condition)
    )


def _groups_of_user(condition: Condition) -> Condition:
    return exists(
        select(Membership.group_id)
        .join(Group, Group.id == Membership.group_id)
        .where(Membership.user_id == User.id, condition)
    )


_EMAILS = _Table(
    {
        Attribute.EMAIL_VALUE: _folded(UserEmail.value_key),
        Attribute.EMAIL_TYPE: lambda op, value: _text(
            func.lower(UserEmail.type), op, _text_value(value).lower()
        ),
        Attribute.EMAIL_PRIMARY: _boolean(UserEmail.is_primary),
    },
    {
        Attribute.EMAIL_VALUE: true(),
        Attribute.EMAIL_TYPE: UserEmail.type.is_not(None),
        Attribute.EMAIL_PRIMARY: UserEmail.is_primary.is_(True),
    },
    {},
)

_USERS = _Table(
    {
        Attribute.USERID: _exact(User.userid),
        Attribute.EXTERNAL_ID: _exact(User.external_id),
        Attribute.DISPLAY_NAME: _folded(User.display_key),
        Attribute.FIRST_NAME: _person_name(0),
        Attribute.LAST_NAME: _person_name(1),
        Attribute.ACTIVE: _boolean(User.active),
        Attribute.CREATED: _moment(User.created_at),
        Attribute.LAST_MODIFIED: _moment(User.updated_at),
    },
    {
        Attribute.USERID: true(),
        Attribute.EXTERNAL_ID: User.external_id.is_not(None),
        Attribute.DISPLAY_NAME: User.display_name.is_not(None),
        Attribute.FIRST_NAME: true(),
        Attribute.LAST_NAME: true(),
        Attribute.ACTIVE: true(),
        Attribute.CREATED: true(),
        Attribute.LAST_MODIFIED: true(),
    },
    {
        Collection.EMAILS: (_EMAILS, _emails_of_user),
        Collection.GROUPS: (
            _Table({Attribute.GROUP: _exact(Group.name)}, {Attribute.GROUP: true()}, {}),
            _groups_of_user,
        ),
    },
)

_GROUPS = _Table(
    {
        Attribute.NAME: _exact(Group.name),
        Attribute.DISPLAY_NAME: _folded(func.coalesce(Group.display_key, Group.name)),
        Attribute.EXTERNAL_ID: _exact(Group.external_id),
        Attribute.CREATED: _moment(Group.created_at),
        Attribute.LAST_MODIFIED: _moment(Group.updated_at),
    },
    {
        Attribute.NAME: true(),
        Attribute.DISPLAY_NAME: true(),
        Attribute.EXTERNAL_ID: Group.external_id.is_not(None),
        Attribute.CREATED: true(),
        Attribute.LAST_MODIFIED: true(),
    },
    {
        Collection.MEMBERS: (
            _Table({Attribute.MEMBER: _exact(User.userid)}, {Attribute.MEMBER: true()}, {}),
            _members_of_group,
        )
    },
)


def user_condition(predicate: Predicate | None) -> Condition:
    """The SQL condition on users of a predicate (None: every user).

    A predicate naming what users lack raises KeyError: the filter's reader
    lets through only what a user has.
    """
    return true() if predicate is None else _USERS(predicate)


def group_condition(predicate: Predicate | None) -> Condition:
    return true() if predicate is None else _GROUPS(predicate)
