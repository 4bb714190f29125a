"""Auth-disabled mode answers only this machine, and takes changes only from its own pages.

With authentication disabled every request acts as admin, so a web page the
user happens to visit could act through their browser in two ways. A
DNS-rebinding page (a domain of the attacker's that now resolves to
127.0.0.1) is the server's own origin to the browser and may read every
answer: its requests carry the attacker's name as Host, so only a loopback
Host is answered (421). A page on another origin can still send a change it
cannot read the answer of (a no-cors fetch, a form post): browsers name the
page's origin in Origin and Sec-Fetch-Site, so an unsafe method from
elsewhere is refused (403). Programs send no Origin and are not affected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import Scope

# Methods that change nothing here; a browser sends them cross-origin freely.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# Loopback Host values seen, so that a read pays one dict lookup: a few
# names times the ports in use, never what a client invents (those are refused).
_KNOWN_HOSTS_LIMIT = 256

Origin = tuple[str, str, int]


def _origin(scheme: str, authority: str) -> Origin | None:
    """(scheme, host, port) of scheme://authority, lower case, the default port made explicit."""
    try:
        parts = urlsplit(f"{scheme}://{authority}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    if parts.netloc != authority or parts.path or parts.query or parts.fragment:
        return None
    if port is None:
        port = DEFAULT_PORTS.get(scheme)
        if port is None:
            return None
    return scheme, parts.hostname.lower(), port


def parse_origin(value: str) -> Origin | None:
    """An Origin header's (scheme, host, port); None for "null" or anything malformed."""
    scheme, sep, authority = value.lower().partition("://")
    return _origin(scheme, authority) if sep else None


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or [::1], with any port or none."""
    authority = _origin("http", host.lower())
    if authority is None:
        return False
    return is_loopback_name(authority[1])


def is_loopback_name(name: str) -> bool:
    """localhost or a loopback address (127.0.0.0/8, ::1), without brackets or port."""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class LocalOnly:
    """The two checks of auth-disabled mode, made before a request reaches any route."""

    def __init__(self, *, trusted_origins: Iterable[str] = ()) -> None:
        # Origins the operator listed for CORS may change things too.
        self._trusted = {found for text in trusted_origins if (found := parse_origin(text))}
        self._loopback: dict[bytes, bool] = {}

    def refusal(self, scope: Scope, host: bytes) -> tuple[int, str, str] | None:
        """(status, code, detail) when the request must be refused, else None."""
        if host not in self._loopback:
            text = host.decode("latin-1")
            if not is_loopback_host(text):
                return (
                    421,
                    "host_not_allowed",
                    "With authentication disabled this server answers only requests addressed"
                    f" to localhost, 127.0.0.1 or [::1], not to {text[:100]!r}.",
                )
            if len(self._loopback) < _KNOWN_HOSTS_LIMIT:
                self._loopback[host] = True
        if scope["method"] in SAFE_METHODS:
            return None
        return self._cross_origin(scope, host.decode("latin-1"))

    def _cross_origin(self, scope: Scope, host: str) -> tuple[int, str, str] | None:
        own = _origin(scope.get("scheme", "http"), host.lower())
        for key, value in scope["headers"]:
            if key == b"sec-fetch-site" and value == b"cross-site":
                sender = "a page of another site"
            elif key == b"origin":
                origin = parse_origin(value.decode("latin-1"))
                if origin == own or origin in self._trusted:
                    continue
                sender = f"a page of {value.decode('latin-1')[:100]!r}"
            else:
                continue
            return (
                403,
                "cross_origin_refused",
                "With authentication disabled changes are accepted only from this server's"
                f" own pages or from programs that send no Origin; this came from {sender}.",
            )
        return None
