from __future__ import annotations

import pytest

from app.names import ascii_lower, is_valid_name, is_valid_person_name


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


def test_ascii_lower_lowers_a_to_z_only() -> None:
    assert ascii_lower("JSmith.Ops@EXAMPLE") == "jsmith.ops@example"
    # KELVIN SIGN, LATIN CAPITAL I WITH DOT, FULLWIDTH A: str.lower() would
    # make ASCII (or rule-passing) names of the first two.
    for look_alike in ("\u212aate", "\u0130van", "\uff21nn"):
        assert ascii_lower(look_alike) == look_alike
        assert not is_valid_name(ascii_lower(look_alike))
