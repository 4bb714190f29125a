"""Opaque keyset cursors: which list they belong to and the last key seen."""

from __future__ import annotations

import base64
import binascii

from app.errors import InvalidCursor
from app.names import is_valid_name


def encode(kind: str, last: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last}".encode()).decode().rstrip("=")


def decode(kind: str, cursor: str | None) -> str | None:
    """The last key of the page before; InvalidCursor for anything we did not give out."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor() from None
    found_kind, _, last = text.partition(":")
    if found_kind != kind or not is_valid_name(last):
        raise InvalidCursor()
    return last
