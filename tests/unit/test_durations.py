"""The pattern the OpenAPI document states for expires_in says no more than the server."""

from __future__ import annotations

import re

import pytest

from app.auth import DURATION_PATTERN, MAX_DURATION_SECONDS, parse_duration

EDGES = ["1s", "9m", "10h", "99d", "999s", "1000m", "9999h", "10000d", "29999d", "35999d"]
EDGES += ["36000d", "36499d", "36500d", "36500s"]


@pytest.mark.parametrize("text", EDGES)
def test_what_the_document_allows_the_server_accepts(text: str) -> None:
    assert re.fullmatch(DURATION_PATTERN, text)
    seconds = parse_duration(text)
    assert seconds is not None
    assert 0 < seconds <= MAX_DURATION_SECONDS


REFUSED = ["", "d", "0s", "00m", "01d", "-5m", "5 d", "5d\n", "5w", "1.5h", "²d", "\u0661d"]
REFUSED += ["36501d", "40000d", "99999999d"]


@pytest.mark.parametrize("text", REFUSED)
def test_what_the_server_refuses_the_document_refuses(text: str) -> None:
    assert not re.fullmatch(DURATION_PATTERN, text)
    seconds = parse_duration(text)
    assert seconds is None or seconds <= 0 or text.startswith("0")
