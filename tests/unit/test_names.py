"""app.names: the naming rules, and that every layer states the same lengths."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import String

from app.models import Group, User
from app.names import (
    NAME_LENGTH,
    NAME_PATTERN,
    PERSON_NAME_LENGTH,
    ascii_lower,
    is_valid_name,
    is_valid_person_name,
)
from app.schemas import UserRecordIn


@pytest.mark.parametrize(
    "name", ["a", "0", "jsmith", "j.smith", "j_smith", "j-smith", "joe@example.com", "a" * 64]
)
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "jSmith",
        "j smith",
        "j/smith",
        ".a",
        "-a",
        "_a",
        "@a",
        "a" * 65,
        "jörg",
        "a\n",
        "a+b",
    ],
)
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)


@pytest.mark.parametrize("name", ["Joe", "Zoë", "山田", "O'Brien", "Anne Marie", "x" * 256, "🙂"])
def test_valid_person_names(name: str) -> None:
    assert is_valid_person_name(name)


@pytest.mark.parametrize(
    "name", ["", "x" * 257, "a\x00b", "tab\there", "new\nline", "\x7f", "\ud800"]
)
def test_invalid_person_names(name: str) -> None:
    assert not is_valid_person_name(name)


def test_the_pattern_and_the_check_agree_on_the_length() -> None:
    longest = "a" * NAME_LENGTH
    assert is_valid_name(longest)
    assert re.fullmatch(NAME_PATTERN, longest)
    assert not is_valid_name(longest + "a")
    assert not re.fullmatch(NAME_PATTERN, longest + "a")
    assert is_valid_person_name("x" * PERSON_NAME_LENGTH)
    assert not is_valid_person_name("x" * (PERSON_NAME_LENGTH + 1))


def test_the_columns_and_the_schemas_take_their_lengths_from_the_rules() -> None:
    for column, length in [
        (User.__table__.c.userid, NAME_LENGTH),
        (Group.__table__.c.name, NAME_LENGTH),
        (User.__table__.c.first_name, PERSON_NAME_LENGTH),
    ]:
        assert isinstance(column.type, String)
        assert column.type.length == length
    schema = UserRecordIn.model_json_schema()
    assert schema["properties"]["first_name"]["maxLength"] == PERSON_NAME_LENGTH
    assert schema["properties"]["userid"]["maxLength"] == NAME_LENGTH
    assert schema["properties"]["userid"]["pattern"] == NAME_PATTERN


def test_ascii_lower_lowers_a_to_z_only() -> None:
    assert ascii_lower("JSmith.Ops@EXAMPLE") == "jsmith.ops@example"
    # KELVIN SIGN, LATIN CAPITAL I WITH DOT, FULLWIDTH A: str.lower() would
    # make ASCII (or rule-passing) names of the first two.
    for look_alike in ("\u212aate", "\u0130van", "\uff21nn"):
        assert ascii_lower(look_alike) == look_alike
        assert not is_valid_name(ascii_lower(look_alike))
