"""Points in time given as text: ISO 8601, as UTC instants every database can store."""

from __future__ import annotations

from datetime import UTC, datetime

TIMESTAMP_RULE = (
    "must be an ISO 8601 date-time such as 2024-05-01T12:00:00Z (no offset: UTC)"
    " between years 1 and 9999"
)


def parse_timestamp(text: str) -> datetime:
    """The UTC instant an ISO 8601 date-time names; ValueError for anything else.

    No Unix times: "0.5" is a typo more often than a moment of 1970. A time
    without an offset is UTC, as every time the service stores. The instant
    itself must lie within years 1-9999 (0001-01-01T00:00+14:00 does not):
    PostgreSQL's driver fails on one outside, SQLite compares it wrong.
    """
    if not text.isascii():
        # fromisoformat() takes any character between date and time ("é");
        # ISO 8601 is ASCII.
        raise ValueError(TIMESTAMP_RULE)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(TIMESTAMP_RULE) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(TIMESTAMP_RULE) from None
