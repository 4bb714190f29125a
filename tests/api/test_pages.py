"""/ and /docs: pages that hold no data, served from pinned files with a strict policy."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from app.api import create_app
from app.api.pages import ASSET_FILES, PAGES_DIR, SWAGGER_UI_DIR
from app.settings import Settings
from tests.support.helpers import assert_problem

pytestmark = pytest.mark.anyio

TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture(params=["required", "disabled"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    # Serving these never touches the database.
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:", auth=request.param)
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


def policy(response: httpx.Response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    assert "unsafe" not in header
    parts = dict(part.strip().split(" ", 1) for part in header.split(";"))
    for directive in ("default-src", "script-src", "style-src", "connect-src"):
        assert parts[directive] == "'self'", directive
    for directive in ("object-src", "base-uri", "frame-ancestors", "form-action"):
        assert parts[directive] == "'none'", directive
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return parts


def assert_nothing_inline(page: str) -> None:
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert "<style" not in page
    assert not re.search(r"\s(style|on[a-z]+)=", page)


def assert_nothing_from_elsewhere(page: str) -> None:
    """Every script, stylesheet and icon is this server's own (no CDN)."""
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources
    assert all(source.startswith("/") and not source.startswith("//") for source in sources)


async def test_docs_page_needs_no_token_and_loads_only_its_own_files(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    # Swagger UI's stylesheet draws its icons from data: URLs; nothing else is allowed.
    assert policy(response)["img-src"] == "'self' data:"
    page = response.text
    assert_nothing_inline(page)
    assert_nothing_from_elsewhere(page)
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts == ["/docs/swagger-ui-bundle.js", "/docs/docs.js"]
    for asset in re.findall(r'(?:src|href)="(/docs/[^"]+)"', page):
        assert (await client.get(asset)).status_code == 200, asset


async def test_docs_script_calls_only_this_server() -> None:
    source = (PAGES_DIR / "docs.js").read_text()
    assert not re.search(r"https?://", source)
    assert "eval(" not in source
    assert "innerHTML" not in source
    # The token stays in the tab's memory: Swagger UI would keep it in localStorage.
    assert "persistAuthorization: false" in source
    assert "Storage.setItem" not in source
    # Swagger UI would otherwise send the document's address to an online validator.
    assert "validatorUrl: null" in source


@pytest.mark.parametrize("name", sorted(ASSET_FILES))
async def test_assets_are_served_with_their_type_and_policy(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.get(f"/docs/{name}")
    assert response.status_code == 200
    expected = TYPES[ASSET_FILES[name].suffix]
    assert response.headers["Content-Type"].split(";")[0] == expected
    assert response.content == ASSET_FILES[name].read_bytes()
    policy(response)


async def test_swagger_ui_comes_from_the_pinned_package(client: httpx.AsyncClient) -> None:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = await client.get(f"/docs/{name}")
        assert response.content == (SWAGGER_UI_DIR / name).read_bytes()
    assert "SwaggerUIBundle" in (await client.get("/docs/swagger-ui-bundle.js")).text


async def test_assets_are_cached_and_revalidated(client: httpx.AsyncClient) -> None:
    """The browser keeps the 1.5 MB bundle and asks again: unchanged, it costs a 304."""
    first = await client.get("/docs/swagger-ui-bundle.js")
    assert first.headers["Cache-Control"] == "public, no-cache"
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    for sent in (etag, f"W/{etag}", f'"other", {etag}'):
        again = await client.get("/docs/swagger-ui-bundle.js", headers={"If-None-Match": sent})
        assert again.status_code == 304, sent
        assert again.content == b""
        assert again.headers["ETag"] == etag
        assert again.headers["Cache-Control"] == "public, no-cache"
        policy(again)
    stale = await client.get("/docs/swagger-ui-bundle.js", headers={"If-None-Match": '"old"'})
    assert stale.status_code == 200
    assert stale.content == first.content
    other = await client.get("/docs/swagger-ui.css")
    assert other.headers["ETag"] != etag


async def test_assets_asked_for_with_credentials_are_not_stored(
    client: httpx.AsyncClient,
) -> None:
    """A request that carried credentials gets no-store, whatever it asked for."""
    response = await client.get(
        "/docs/swagger-ui.css", headers={"Authorization": "Bearer not-a-token"}
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


async def test_pages_themselves_are_not_cached(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/"):
        response = await client.get(path, headers={"Accept": "text/html"})
        assert response.headers["Cache-Control"] in {"no-cache", "no-store"}, path
        assert "ETag" not in response.headers


@pytest.mark.parametrize(
    "name",
    ["nothing.js", "index.html", "..%2Fpages.py", "%2E%2E", "swagger-ui-bundle.js.map", "redoc"],
)
async def test_only_the_listed_files_are_served(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/docs/{name}")
    assert_problem(response, 404, "not_found")


async def test_docs_subpaths_are_not_files(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/x/swagger-ui.css")
    assert_problem(response, 404, "not_found")


async def test_redoc_is_not_served(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/redoc"), 404, "not_found")


async def test_front_page_for_a_browser(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Vary"] == "Accept"
    assert policy(response)["img-src"] == "'self'"
    page = response.text
    assert_nothing_inline(page)
    assert_nothing_from_elsewhere(page)
    links = re.findall(r'<a href="([^"]+)"', page)
    assert links == ["/ui", "/docs", "/openapi.json", "/healthz"]
    assert "README.md" in page
    assert "docs/" in page
    for asset in re.findall(r'<link[^>]*href="([^"]+)"', page):
        assert (await client.get(asset)).status_code == 200, asset


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
async def test_front_page_for_other_clients_is_json(
    client: httpx.AsyncClient, accept: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    response = await client.get("/", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Vary"] == "Accept"
    assert response.json() == {
        "service": "grouped-users",
        "links": {
            "console": "/ui",
            "docs": "/docs",
            "openapi": "/openapi.json",
            "health": "/healthz",
        },
        "reference": "README.md and docs/ in the repository",
    }


async def test_front_page_links_lead_to_routes(client: httpx.AsyncClient) -> None:
    links = (await client.get("/", headers={"Accept": "application/json"})).json()["links"]
    for name, path in links.items():
        response = await client.get(path)
        # The OpenAPI document follows the token setting; everything else is open.
        assert response.status_code in ({200, 401} if name == "openapi" else {200}), path
