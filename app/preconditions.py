"""Conditional requests (RFC 9110 section 13): entity tags, If-Match and If-None-Match.

The one reading of these headers, for the API and SCIM alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')


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


def _tags(value: str) -> list[tuple[bool, str]]:
    """(weak, tag) for each entity tag of a header value; unparsable parts are dropped."""
    return [(bool(weak), tag) for weak, tag in _TAG.findall(value)]


def if_match(header: str | None) -> IfMatch | None:
    """The condition of an If-Match header; None when there is none.

    `*` holds for any current resource (a missing one is a 404 first). The
    comparison is strong: a weak tag never matches, so a header of weak tags
    only can never hold.
    """
    if header is None:
        return None
    if header.strip() == "*":
        return IfMatch(None)
    return IfMatch(frozenset(tag for weak, tag in _tags(header) if not weak))


def none_match(header: str | None, current: str) -> bool:
    """Whether If-None-Match names the current tag (weak comparison) or is `*`:
    a GET then answers 304 Not Modified."""
    if header is None:
        return False
    return header.strip() == "*" or current in {tag for _, tag in _tags(header)}
