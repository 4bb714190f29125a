"""Reading If-Match and If-None-Match: pure logic, no database."""

from __future__ import annotations

import pytest

from app.preconditions import IfMatch, etag, if_match, none_match

CURRENT = etag(7, 3)


def test_an_etag_is_strong_and_names_row_and_version() -> None:
    assert CURRENT == '"7.3"'


@pytest.mark.parametrize(
    ("header", "holds"),
    [
        (None, True),
        ("*", True),
        (" * ", True),
        ('"7.3"', True),
        ('"1.1", "7.3"', True),
        ('"1.1","7.3"', True),
        ('W/"7.3"', False),  # If-Match compares strongly
        ('"7.2"', False),
        ("7.3", False),  # not an entity tag
        ("", False),
    ],
)
def test_if_match(header: str | None, holds: bool) -> None:
    condition = if_match(header)
    assert (condition is None or condition.holds(CURRENT)) is holds


def test_no_if_match_is_no_condition_and_star_is_any() -> None:
    assert if_match(None) is None
    assert if_match("*") == IfMatch(None)


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("*", True),
        ('"7.3"', True),
        ('W/"7.3"', True),  # If-None-Match compares weakly
        ('"1.1", W/"7.3"', True),
        ('"7.2"', False),
        ("7.3", False),
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert none_match(header, CURRENT) is matches
