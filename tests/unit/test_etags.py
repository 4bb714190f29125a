"""Entity tags: how they are made, If-Match, and If-None-Match's list of tags."""

from __future__ import annotations

import pytest

from app.api.etags import not_modified
from app.preconditions import IfMatch, etag


def test_a_tag_names_the_row_and_its_version() -> None:
    assert etag(7, 12) == '"7.12"'
    # A re-created resource starts again at version 1 but has another id.
    assert etag(8, 1) != etag(7, 1)


def test_if_match_holds_for_a_listed_tag_or_any() -> None:
    assert IfMatch(frozenset({'"1.2"', '"1.3"'})).holds('"1.3"')
    assert not IfMatch(frozenset({'"1.2"'})).holds('"1.3"')
    assert IfMatch(None).holds('"1.3"')


@pytest.mark.parametrize(
    "header",
    ['"7.12"', 'W/"7.12"', '"1.1", "7.12"', ' "1.1" ,W/"7.12" ', "*"],
)
def test_if_none_match_that_lists_the_tag_is_304(header: str) -> None:
    response = not_modified(header, '"7.12"')
    assert response is not None
    assert (response.status_code, response.headers["ETag"]) == (304, '"7.12"')


@pytest.mark.parametrize("header", [None, '"7.1"', '"7.12', '"17.12"', 'W/"7.120"'])
def test_if_none_match_without_the_tag_is_answered_in_full(header: str | None) -> None:
    assert not_modified(header, '"7.12"') is None
