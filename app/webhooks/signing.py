"""Standard Webhooks signatures, and the signing secrets as the database keeps them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

SECRET_PREFIX = "whsec_"  # noqa: S105 (the specification's prefix, not a secret)
_SECRET_BYTES = 32
# How an encrypted secret is told apart from a plain one in the database.
_SEALED = "fernet:"


class SecretUnavailable(Exception):
    """The stored secret is encrypted and GROUPED_USERS_SECRET_KEY is unset or another."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def sign(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: v1 and the HMAC-SHA256 of id.timestamp.body."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signatures(secrets: list[str], *, message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: one signature per secret, space-separated.

    A receiver accepts the message if any of them verifies with its secret.
    """
    return " ".join(
        sign(secret, message_id=message_id, timestamp=timestamp, body=body) for secret in secrets
    )


class SecretBox:
    """Seals secrets with a key derived from GROUPED_USERS_SECRET_KEY (Fernet), if one is set.

    Without a key secrets are stored as they are: whoever reads the
    database can then sign as us. With one, a dump alone holds only
    ciphertext.
    """

    def __init__(self, key: str | None) -> None:
        self._fernet: Fernet | None = None
        if key:
            # Imported only when a key is set: cryptography is some 6 MB of
            # every worker's memory, for a setting most deployments leave unset.
            from cryptography.fernet import Fernet

            self._fernet = Fernet(_derive(key))

    def seal(self, secret: str) -> str:
        if self._fernet is None:
            return secret
        return _SEALED + self._fernet.encrypt(secret.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(_SEALED):
            return stored
        if self._fernet is None:
            raise SecretUnavailable("the signing secret is encrypted and no secret key is set")
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(stored.removeprefix(_SEALED).encode()).decode()
        except InvalidToken:
            raise SecretUnavailable("the signing secret was encrypted with another key") from None


def _derive(key: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    # Any text will do as the setting; HKDF makes it a 32-byte Fernet key.
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"grouped-users webhook secrets"
    ).derive(key.encode())
    return base64.urlsafe_b64encode(derived)
