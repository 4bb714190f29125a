"""UserPatch: a JSON merge patch (RFC 7396): what is sent changes, null removes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.schemas import UserPatch


def test_absent_fields_keep_their_values() -> None:
    patch = UserPatch.model_validate({"last_name": "Smith-Jones"})
    assert patch.model_fields_set == {"last_name"}
    assert patch.first_name is None
    assert patch.nulled() == []


def test_null_groups_is_a_change_not_an_absence() -> None:
    patch = UserPatch.model_validate({"groups": None})
    assert "groups" in patch.model_fields_set
    assert patch.groups is None
    assert patch.nulled() == []


def test_null_names_cannot_be_removed() -> None:
    patch = UserPatch.model_validate({"first_name": None, "userid": None, "last_name": "X"})
    assert patch.nulled() == ["first_name", "userid"]


@pytest.mark.parametrize(
    "body",
    [
        {"nickname": "jo"},  # no such field
        {"groups": ["admins", "admins"]},  # listed twice
        {"groups": ["Admins"]},  # breaks the name rule
        {"first_name": ""},  # too short
        {"first_name": "a\u0000b"},  # a control character
    ],
)
def test_what_no_record_could_hold_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        UserPatch.model_validate(body)
