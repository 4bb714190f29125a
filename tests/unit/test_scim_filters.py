"""SCIM filter text read into predicates, and predicates compiled to SQL: no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import ColumnElement
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from app.predicates import And, Attribute, Collection, Compare, Not, Op, Or, Present, Some
from app.repository.scim_filters import group_condition, user_condition
from app.scim.errors import ScimError
from app.scim.filters import MAX_FILTER_LENGTH, group_filter, user_filter

SQLITE: Dialect = sqlite.dialect()
POSTGRESQL: Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]


def test_no_filter_is_no_predicate() -> None:
    assert user_filter(None) is None
    assert group_filter("") is None


@pytest.mark.parametrize(
    ("text", "predicate"),
    [
        # userName ignores case as userids are stored (A-Z lowered); id is exact.
        ('userName eq "JSmith"', Compare(Attribute.USERID, Op.EQ, "jsmith")),
        ('id eq "JSmith"', Compare(Attribute.USERID, Op.EQ, "JSmith")),
        ('name.givenName sw "Jo"', Compare(Attribute.FIRST_NAME, Op.STARTS_WITH, "Jo")),
        ("active eq false", Compare(Attribute.ACTIVE, Op.EQ, False)),
        (
            'meta.lastModified gt "2024-05-01T12:00:00Z"',
            Compare(Attribute.LAST_MODIFIED, Op.GT, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ),
        ("name pr", Present(Attribute.FIRST_NAME)),
        ("emails pr", Some(Collection.EMAILS, Present(Attribute.EMAIL_VALUE))),
        (
            'emails.type eq "work"',
            Some(Collection.EMAILS, Compare(Attribute.EMAIL_TYPE, Op.EQ, "work")),
        ),
        (
            'urn:ietf:params:scim:schemas:core:2.0:User:userName co "a"',
            Compare(Attribute.USERID, Op.CONTAINS, "a"),
        ),
    ],
)
def test_user_filters_name_our_attributes(text: str, predicate: object) -> None:
    assert user_filter(text) == predicate


def test_a_value_path_is_one_value_satisfying_all_of_it() -> None:
    text = 'emails[type eq "work" and value ew "@example.com"] or not (displayName pr)'
    assert user_filter(text) == Or(
        (
            Some(
                Collection.EMAILS,
                And(
                    (
                        Compare(Attribute.EMAIL_TYPE, Op.EQ, "work"),
                        Compare(Attribute.EMAIL_VALUE, Op.ENDS_WITH, "@example.com"),
                    )
                ),
            ),
            Not(Present(Attribute.DISPLAY_NAME)),
        )
    )


def test_group_filters() -> None:
    assert group_filter('id eq "admins"') == Compare(Attribute.NAME, Op.EQ, "admins")
    assert group_filter('members[value eq "ann"]') == Some(
        Collection.MEMBERS, Compare(Attribute.MEMBER, Op.EQ, "ann")
    )


@pytest.mark.parametrize(
    "text",
    [
        'nickName eq "x"',  # no such attribute here
        'userName gt "a"',  # text takes eq, ne, co, sw, ew
        "userName eq 5",  # text compares with a string
        'active eq "true"',  # a boolean with a boolean
        'meta.created eq "yesterday"',  # a moment with a dateTime
        'meta.created eq "2020-01-01\\u000100:00:00"',  # any separator is fromisoformat's
        'meta.created co "2020"',
        'userName eq "\\ud800"',  # a lone surrogate is no text
        'name eq "x"',  # a complex attribute can only be present
        'emails[type eq "work"][value pr]',
        'name[givenName eq "x"]',  # not multi-valued
        "emails[emails[value pr]]",
        'emails.nothing eq "x"',
        'urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x"',
        "userName eq",  # not a filter at all
        "x" * (MAX_FILTER_LENGTH + 1),
    ],
)
def test_filters_we_cannot_run_are_invalid_filters(text: str) -> None:
    with pytest.raises(ScimError) as caught:
        user_filter(text)
    assert (caught.value.status, caught.value.scim_type) == (400, "invalidFilter")


def test_members_are_no_user_attribute() -> None:
    with pytest.raises(ScimError):
        user_filter('members.value eq "ann"')
    with pytest.raises(ScimError):
        group_filter('emails.value eq "ann@example.com"')


def _sql(condition: ColumnElement[bool], dialect: Dialect) -> str:
    return str(condition.compile(dialect=dialect))


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRESQL])
def test_predicates_compile_to_conditions_with_bound_values(dialect: Dialect) -> None:
    text = (
        'userName sw "a%_" and displayName co "Ä" and name.familyName eq "Doe"'
        ' and emails[type eq "Work" and primary eq true] and groups.value ne "grp-q"'
        ' and meta.created le "2024-01-01T00:00:00Z" and externalId pr'
    )
    sql = _sql(user_condition(user_filter(text)), dialect)
    # Values are parameters, never part of the statement's text.
    for value in ("a%_", "Ä", "Doe", "Work", "grp-q"):
        assert value not in sql
    assert "EXISTS" in sql
    assert "LIKE" in sql
    members = group_condition(group_filter('members[value co "ann"]'))
    assert "EXISTS" in _sql(members, dialect)
    assert list(members.compile(dialect=dialect).params.values()) == ["%ann%"]


def test_like_patterns_are_escaped_and_ignore_case_by_casefold() -> None:
    condition = user_condition(user_filter('displayName sw "Straße_%"'))
    params = condition.compile(dialect=SQLITE).params
    assert list(params.values()) == ["strasse\\_\\%%"]


def test_control_characters_compare_as_the_one_stand_in() -> None:
    # No stored text holds one; PostgreSQL text cannot carry U+0000.
    condition = user_condition(user_filter('externalId eq "a\\u0000b"'))
    assert list(condition.compile(dialect=POSTGRESQL).params.values()) == ["\x01"]
