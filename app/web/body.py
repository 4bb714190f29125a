"""Reading the API's JSON request bodies: media type (415) and size limit (413) first."""

from __future__ import annotations

from fastapi import Request
from starlette.types import Message, Receive

from app.http_common import HTTPProblem, is_json, read_limited


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def checked_json(request: Request) -> Request:
    """The request with its body read: JSON (else 415) and within the limit (else 413).

    FastAPI's own max_body_size answers a declared oversize body in plain
    text, and a body of another media type reaches validation as bytes (a
    422); the contract wants a problem+json 413 and a 415.
    """
    body = await read_limited(request, request.app.state.settings.max_body_bytes)
    content_type = request.headers.get("content-type")
    if body and not is_json(content_type):
        raise HTTPProblem(
            415,
            "unsupported_media_type",
            f"The body must be JSON (application/json), not {content_type}.",
        )
    return Request(request.scope, _replay(body, request.receive))
