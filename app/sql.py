"""SQL helpers with no side: the read queries (app.reads) and the write side's
(app.repository) both use them, so they live outside either."""

from __future__ import annotations


def escape_like(text: str) -> str:
    """`text` as a LIKE pattern that matches it literally (with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
