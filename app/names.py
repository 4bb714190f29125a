"""The naming rules of the contract (docs/contract.md), shared by schemas and use cases."""

from __future__ import annotations

import re
import unicodedata

# The one place these lengths are written: the tables' columns, the schemas,
# the OpenAPI document and the checks below all read them from here.
NAME_LENGTH = 64
PERSON_NAME_LENGTH = 256

_NAME_BODY = rf"[a-z0-9][a-z0-9._@-]{{0,{NAME_LENGTH - 1}}}"
NAME_PATTERN = rf"^{_NAME_BODY}$"
NAME_RULE = (
    f"must be 1-{NAME_LENGTH} characters from a-z, 0-9, '.', '_', '-' and '@',"
    " starting with a letter or digit"
)
PERSON_NAME_RULE = f"must be 1-{PERSON_NAME_LENGTH} characters with no control characters"
SEARCH_RULE = f"must be at most {PERSON_NAME_LENGTH} characters with no control characters"

_NAME = re.compile(_NAME_BODY)
# The person-name rule as a JSON Schema pattern: no control character (Cc).
# Lone surrogates (Cs), refused too, cannot be written in it: many regular
# expression engines (Rust's, so schemathesis) reject the whole pattern then.
NO_CONTROL_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
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
    return 1 <= len(value) <= PERSON_NAME_LENGTH and not any(
        unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in value
    )
