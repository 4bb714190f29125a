"""Who is acting: roles, actors and API token secrets."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

# 32 bytes = 256 bits from the OS's CSPRNG; the prefix tells a leaked token
# apart in logs and secret scanners.
TOKEN_PREFIX = "gu_"  # noqa: S105 (a prefix, not a secret)
TOKEN_BYTES = 32


class Role(enum.IntEnum):
    """Each role can do all that the roles below it can."""

    reader = 1  # read users and groups
    writer = 2  # ... and change them
    admin = 3  # ... and manage tokens and read the audit log

    @classmethod
    def named(cls, name: str) -> Role:
        return cls[name]


@dataclass(frozen=True)
class Actor:
    """Who makes a change, as the audit log names them, and the request it came in."""

    name: str
    role: Role
    request_id: str | None = None


ANONYMOUS = "anonymous"


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def digest(secret: str) -> str:
    """What is stored of a secret: its SHA-256, hex.

    A secret has 256 bits of entropy, so a fast hash is enough: there is no
    dictionary to try against it, and lookups stay one indexed query.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(stored: str, presented: str) -> bool:
    return hmac.compare_digest(stored, presented)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int | None:
    """Seconds in '90s', '15m', '12h' or '30d'; None when it is not such a duration."""
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit():
        return None
    return int(number) * _UNITS[unit]
