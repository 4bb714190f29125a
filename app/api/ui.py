"""/ui: the admin console, static files that call the public JSON API and nothing else."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# Nothing inline, nothing from elsewhere, never in a frame: a token in
# sessionStorage is only as safe as the scripts that can read it.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Small files: always revalidate, so an upgrade is seen at once.
    "Cache-Control": "no-cache",
}


def _assets() -> dict[str, Path]:
    """The files the console is made of; no other name is ever read from disk."""
    return {
        path.name: path
        for path in sorted(UI_DIR.iterdir())
        if path.is_file() and path.suffix in MEDIA_TYPES
    }


# The console needs no token to load: it holds no data, only code that asks
# the API, which checks the token of every request.
router = APIRouter(include_in_schema=False)


def _serve(name: str) -> Response:
    path = _assets().get(name)
    if path is None:
        raise StarletteHTTPException(status_code=404)
    return Response(path.read_bytes(), media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)


@router.get("/ui")
def console() -> Response:
    """The console's page."""
    return _serve("index.html")


@router.get("/ui/{asset}")
def console_asset(asset: str) -> Response:
    """A script or stylesheet of the console."""
    return _serve(asset)
