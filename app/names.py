"""The naming rules of SPEC §2, shared by schemas and use cases."""

from __future__ import annotations

import re
import unicodedata

NAME_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,63}$"
NAME_RULE = (
    "must be 1-64 characters from a-z, 0-9, '.', '_', '-' and '@', starting with a letter or digit"
)
PERSON_NAME_RULE = "must be 1-256 characters with no control characters"

_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
# Control characters, and lone surrogates that no database can store.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs"})


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def is_valid_name(value: str) -> bool:
    return _NAME.fullmatch(value) is not None


def ascii_lower(value: str) -> str:
    """`value` with A-Z made a-z and every other character as sent.

    Where a name ignores case, this is the folding: str.lower() would also turn
    look-alikes into the ASCII letters they resemble (KELVIN SIGN U+212A is
    'k'), and a name sent with one would reach another's record.
    """
    return value.translate(_ASCII_LOWER)


def is_valid_person_name(value: str) -> bool:
    return 1 <= len(value) <= 256 and not any(
        unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in value
    )
