"""Versions as entity tags, and the If-Match condition a change may carry."""

from __future__ import annotations

from dataclasses import dataclass


def etag(row_id: int, version: int) -> str:
    """A strong entity tag. The row id keeps a re-created resource from
    matching the tags of the one it replaced; the version changes with every
    change of the representation."""
    return f'"{row_id}.{version}"'


@dataclass(frozen=True)
class IfMatch:
    """Apply a change only while the resource has one of these tags (None: any)."""

    etags: frozenset[str] | None

    def holds(self, current: str) -> bool:
        return self.etags is None or current in self.etags
