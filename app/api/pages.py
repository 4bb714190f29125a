"""Pages that hold no data: the front page at / and the API documentation at /docs.

Swagger UI's script and stylesheet come from the pinned `fastapi-offline`
package and are served from here, so the documentation works without any
network beyond this server. Like the console, these need no token: the data
they show comes from the API, which checks the token of every request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.etags import not_modified
from app.api.ui import HEADERS as CONSOLE_HEADERS

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
SWAGGER_UI_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"

# The name under /docs/ -> the file; no other name is ever read from disk.
ASSET_FILES = {
    "swagger-ui-bundle.js": SWAGGER_UI_DIR / "swagger-ui-bundle.js",
    "swagger-ui.css": SWAGGER_UI_DIR / "swagger-ui.css",
    "favicon.png": SWAGGER_UI_DIR / "favicon.png",
    "docs.js": PAGES_DIR / "docs.js",
    "home.css": PAGES_DIR / "home.css",
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}
HTML = "text/html; charset=utf-8"

# The console's policy, but Swagger UI's stylesheet draws its icons from data:
# URLs, which can hold an image and nothing that runs.
DOCS_POLICY = CONSOLE_HEADERS["Content-Security-Policy"].replace(
    "img-src 'self'", "img-src 'self' data:"
)
PAGE_HEADERS = CONSOLE_HEADERS | {"Content-Security-Policy": DOCS_POLICY}
# 1.5 MB of script: the browser keeps it and asks again with If-None-Match,
# so an upgrade is seen at once and an unchanged file costs a 304. "public"
# also tells the edge that these answers need no credentials (no-store).
ASSET_CACHING = "public, no-cache"

LINKS = {
    "console": "/ui",
    "docs": "/docs",
    "openapi": "/openapi.json",
    "health": "/healthz",
}
REFERENCE = "README.md and docs/ in the repository"

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def _asset(name: str) -> Asset:
    """Read once per process: the files change only with a new release."""
    path = ASSET_FILES[name]
    body = path.read_bytes()
    return Asset(body, MEDIA_TYPES[path.suffix], f'"{hashlib.sha256(body).hexdigest()[:32]}"')


@cache
def _page(name: str) -> bytes:
    return (PAGES_DIR / name).read_bytes()


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


@router.get("/")
def home(request: Request) -> Response:
    """A browser gets a page of links; any other client their JSON form."""
    if _wants_html(request):
        response: Response = Response(_page("home.html"), media_type=HTML, headers=CONSOLE_HEADERS)
    else:
        response = JSONResponse(
            {"service": "grouped-users", "links": LINKS, "reference": REFERENCE}
        )
    response.headers["Vary"] = "Accept"
    return response


@router.get("/docs")
def swagger_ui() -> Response:
    """Swagger UI's page; its scripts are served below, never from elsewhere."""
    return Response(_page("docs.html"), media_type=HTML, headers=PAGE_HEADERS)


@router.get("/docs/{name}")
def docs_asset(name: str, request: Request) -> Response:
    """A script, stylesheet or icon of the documentation pages."""
    if name not in ASSET_FILES:
        raise StarletteHTTPException(status_code=404)
    asset = _asset(name)
    headers = PAGE_HEADERS | {"Cache-Control": ASSET_CACHING, "ETag": asset.etag}
    unchanged = not_modified(request.headers.get("if-none-match"), asset.etag)
    if unchanged is not None:
        unchanged.headers.update(headers)
        return unchanged
    return Response(asset.body, media_type=asset.media_type, headers=headers)
