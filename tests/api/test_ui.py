"""/ui: the console's files, served with a strict Content-Security-Policy."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.api import create_app
from app.api.ui import UI_DIR
from app.settings import Settings
from tests.support.helpers import assert_problem

pytestmark = pytest.mark.anyio

ASSETS = sorted(path.name for path in UI_DIR.iterdir() if path.suffix in {".js", ".css"})


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # Serving files never touches the database; auth required, as in production.
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", auth="required"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


def check_policy(response: httpx.Response) -> None:
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_page_needs_no_token_and_has_a_strict_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    check_policy(response)
    page = response.text
    # Nothing inline: every script has a src, no style element or attribute, no handlers.
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert "<style" not in page
    assert not re.search(r"\s(style|on[a-z]+)=", page)
    for asset in re.findall(r'(?:src|href)="(/ui/[^"]+)"', page):
        assert (await client.get(asset)).status_code == 200, asset


@pytest.mark.parametrize("asset", ASSETS)
async def test_assets_are_served_with_their_type(client: httpx.AsyncClient, asset: str) -> None:
    response = await client.get(f"/ui/{asset}")
    assert response.status_code == 200
    expected = "text/javascript" if asset.endswith(".js") else "text/css"
    assert response.headers["Content-Type"] == f"{expected}; charset=utf-8"
    assert response.content == (UI_DIR / asset).read_bytes()
    check_policy(response)


@pytest.mark.parametrize("asset", ASSETS)
async def test_scripts_use_only_the_public_api(asset: str) -> None:
    """No HTML parsed from strings (XSS), no eval, no calls but to the API's own routes."""
    source = (UI_DIR / asset).read_text()
    assert "innerHTML" not in source
    assert "eval(" not in source
    assert "new Function" not in source
    assert "http://" not in source
    assert "https://" not in source


@pytest.mark.parametrize(
    "url", ["/ui/missing.js", "/ui/..%2Fapi%2Fui.py", "/ui/%2E%2E", "/ui/", "/ui/app.js/x"]
)
async def test_nothing_else_is_served(client: httpx.AsyncClient, url: str) -> None:
    response = await client.get(url)
    assert_problem(response, 404, "not_found")


def test_the_files_are_in_the_wheel(tmp_path: Path) -> None:
    """pip install . (as the Dockerfile does) carries the console along."""
    root = UI_DIR.parents[1]
    source = tmp_path / "source"
    shutil.copytree(root / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    command += ["--no-build-isolation", "--wheel-dir", str(tmp_path), str(source)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    (wheel,) = tmp_path.glob("grouped_users-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {name for name in archive.namelist() if name.startswith("app/ui/")}
    expected = {f"app/ui/{path.name}" for path in UI_DIR.iterdir() if path.is_file()}
    assert packaged == expected
