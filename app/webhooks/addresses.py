"""Where a webhook may point: https (unless allowed) to hosts with public addresses only."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class RefusedURL(Exception):
    """The URL may not be called; the message says why."""


def check_form(url: str, *, allow_http: bool) -> tuple[str, int]:
    """The host and port of a well-formed webhook URL."""
    if len(url) > 2048:
        raise RefusedURL("is longer than 2048 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedURL(f"is not a valid URL: {exc}") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise RefusedURL("must start with https://" if not allow_http else "must be an http(s) URL")
    if not parts.hostname:
        raise RefusedURL("has no host")
    if parts.username is not None or parts.password is not None:
        raise RefusedURL("may not carry credentials")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # Loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
    # (169.254/16 with the cloud metadata address, fe80::/10), shared,
    # reserved and unspecified addresses are none of them global.
    return ip.is_global and not ip.is_multicast


async def check(url: str, *, allow_http: bool, allow_private: bool) -> None:
    """Refuse a URL we must not call: at registration, and again before each delivery."""
    host, port = check_form(url, allow_http=allow_http)
    if allow_private:
        return
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedURL(f"has a host that does not resolve ({exc})") from None
    private = sorted({str(info[4][0]) for info in found if not is_public(str(info[4][0]))})
    if private or not found:
        raise RefusedURL(
            f"resolves to a private, loopback or link-local address ({', '.join(private)});"
            " GROUPED_USERS_WEBHOOK_ALLOW_PRIVATE=true allows that"
        )
