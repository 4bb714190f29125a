"""Raw loopback sockets for the tests that speak HTTP/1.1 byte by byte to a real server.

What an attacker or a careless client does (headers that never end, a body
that stops half way, a thousand idle connections) cannot be said through
httpx; these few helpers say it once.
"""

from __future__ import annotations

import asyncio
import socket

LOOPBACK = "127.0.0.1"

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def free_port() -> int:
    """A loopback port nobody listens on now (the OS picked it; it is free until taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


async def connect(port: int, within: float) -> Connection:
    """A raw connection to the loopback port, opened within `within` seconds."""
    return await asyncio.wait_for(asyncio.open_connection(LOOPBACK, port), within)


def request_head(
    method: str, path: str, headers: dict[str, str] | None = None, *, complete: bool = True
) -> bytes:
    """The request line and headers (Host first); `complete=False` leaves off the blank line."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {LOOPBACK}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + ("\r\n\r\n" if complete else "\r\n")).encode()


def json_head(method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """The complete head of a request whose body is these JSON bytes."""
    sized = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    return request_head(method, path, sized | (headers or {}))


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response from a raw connection: status, headers (lower case), body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def get(
    connection: Connection, path: str, within: float
) -> tuple[int, dict[str, str], bytes]:
    """One GET on a raw (keep-alive) connection and its response, read within `within` seconds."""
    reader, writer = connection
    writer.write(request_head("GET", path))
    await writer.drain()
    return await asyncio.wait_for(read_response(reader), within)
