"""Who is acting: roles, actors and API token secrets."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
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
    """Who makes a change, as the audit log names them, and the request it came in.

    request_id is the id the answer carries (the client's X-Request-ID if it
    sent a sane one); server_request_id is the server's own, never shared by
    two requests. token_id stays with a token for good, where its name can
    come back after a revocation.
    """

    name: str
    role: Role
    request_id: str | None = None
    server_request_id: str | None = None
    token_id: int | None = None


# The actor of every request with authentication disabled.
ANONYMOUS = "anonymous"
# The actors of the command line: cli:<local account>.
CLI_PREFIX = "cli:"


def is_reserved_name(name: str) -> bool:
    """Names the audit log gives actors that are not tokens: no token may take one."""
    return name == ANONYMOUS or name.startswith(CLI_PREFIX)


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
# ASCII digits only: str.isdigit() also takes "²", which int() refuses.
_DURATION = re.compile(r"([0-9]{1,12})([smhd])")
# A token that should never expire is made without an expiry; a longer one
# would only be a typo, and past year 9999 an expiry cannot be stored.
MAX_DURATION_SECONDS = 36500 * 86400
DURATION_RULE = "must be a duration such as 90s, 15m, 12h or 30d, of at most 36500d"


def parse_duration(text: str) -> int | None:
    """Seconds in '90s', '15m', '12h' or '30d', up to 36500d; None for anything else."""
    found = _DURATION.fullmatch(text)
    if found is None:
        return None
    seconds = int(found[1]) * _UNITS[found[2]]
    return seconds if seconds <= MAX_DURATION_SECONDS else None
