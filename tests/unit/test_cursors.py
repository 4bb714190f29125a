"""app.cursors: opaque keyset cursors that only this server gives out."""

from __future__ import annotations

import base64

import pytest

from app import cursors
from app.errors import InvalidCursor


def test_a_cursor_gives_back_its_key() -> None:
    cursor = cursors.encode("users", "j.smith@example")
    assert "=" not in cursor
    assert cursors.decode("users", cursor) == "j.smith@example"


def test_no_cursor_is_the_first_page() -> None:
    assert cursors.decode("users", None) is None


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        cursors.encode("groups", "admins"),  # another list's
        _raw("users:Not A Name"),  # a key no userid can have
        _raw("users"),  # no key at all
        "!!!",  # not base64
        "a",  # a length base64 cannot have
        base64.urlsafe_b64encode(b"users:\xff").decode(),  # not UTF-8
    ],
)
def test_anything_else_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        cursors.decode("users", cursor)
