"""A filter on users or groups as a value: which attribute, compared how, with what; and, or, not.

SCIM's filter syntax is read into it (app.scim.filters) and the repository
turns it into SQL (app.repository.scim_filters): it knows neither. A
predicate that reaches the repository is well typed: its attributes belong to
the resource filtered, text compares with text, a moment with a datetime.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Attribute(StrEnum):
    """What a predicate compares: a user's or a group's attribute, or one of a collection's."""

    # Users.
    USERID = "userid"
    FIRST_NAME = "first_name"
    LAST_NAME = "last_name"
    ACTIVE = "active"
    # Users and groups.
    NAME = "name"  # a group's name
    DISPLAY_NAME = "display_name"
    EXTERNAL_ID = "external_id"
    CREATED = "created"
    LAST_MODIFIED = "last_modified"
    # Inside a collection (Some).
    EMAIL_VALUE = "email.value"
    EMAIL_TYPE = "email.type"
    EMAIL_PRIMARY = "email.primary"
    GROUP = "group"  # the name of one of a user's groups
    MEMBER = "member"  # the userid of one of a group's members


class Collection(StrEnum):
    EMAILS = "emails"  # a user's
    GROUPS = "groups"  # a user's
    MEMBERS = "members"  # a group's


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    CONTAINS = "co"
    STARTS_WITH = "sw"
    ENDS_WITH = "ew"
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"


TEXT_OPS = frozenset({Op.EQ, Op.NE, Op.CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH})
BOOLEAN_OPS = frozenset({Op.EQ, Op.NE})
ORDER_OPS = frozenset({Op.EQ, Op.NE, Op.GT, Op.GE, Op.LT, Op.LE})


@dataclass(frozen=True)
class Compare:
    """attribute <op> value; text attributes that ignore case do so whatever the value's case."""

    attribute: Attribute
    op: Op
    value: str | bool | datetime


@dataclass(frozen=True)
class Present:
    """The attribute has a value."""

    attribute: Attribute


@dataclass(frozen=True)
class And:
    terms: tuple[Predicate, ...]


@dataclass(frozen=True)
class Or:
    terms: tuple[Predicate, ...]


@dataclass(frozen=True)
class Not:
    term: Predicate


@dataclass(frozen=True)
class Some:
    """One value of the collection satisfies `where` (whose attributes are the collection's)."""

    collection: Collection
    where: Predicate


Predicate = Compare | Present | And | Or | Not | Some
