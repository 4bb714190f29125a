"""/docs and / in headless Chromium, against a real server, with no network beyond loopback.

Every request the browser makes to anything but this machine is aborted and
recorded: the API documentation must work in a locked-down network, from
files pinned with the project.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from tests.support.live_server import fresh_postgres, postgres_server
from tests.ui.conftest import Console, Tabs, serve

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Chromium parses 1.5 MB of Swagger UI before the page shows anything: on a
# loaded machine that takes longer than expect()'s default of 5 s.
RENDERED = 30_000
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def docs_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    """A server that requires tokens (reader, writer, admin), on each database."""
    directory = tmp_path_factory.mktemp(f"docs-{request.param}")
    if request.param == "sqlite":
        yield from serve(directory, "required")
        return
    # Playwright's sync API runs an event loop in this thread, and fresh_postgres
    # runs its own: it gets a thread of its own.
    database = fresh_postgres(postgres_server(), "grouped_users_docs")
    with ThreadPoolExecutor(1) as thread:
        url = thread.submit(database.__enter__).result()
        try:
            yield from serve(directory, "required", url)
        finally:
            thread.submit(database.__exit__, None, None, None).result()


def loopback_only(page: Page) -> list[str]:
    """Abort every request that would leave this machine; returns the list of those."""
    left: list[str] = []

    def route(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in {"data", "blob"} or url.hostname in LOOPBACK:
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    page.context.route("**/*", route)
    return left


def operations(document: dict[str, object]) -> set[tuple[str, str]]:
    paths = document["paths"]
    assert isinstance(paths, dict)
    return {
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if method in METHODS
    }


def listed(page: Page) -> set[tuple[str, str]]:
    """The (method, path) of every operation Swagger UI shows."""
    pairs = page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(block => [
            block.querySelector('.opblock-summary-method').textContent,
            block.querySelector('.opblock-summary-path').getAttribute('data-path'),
        ])""",
    )
    return {(method, path) for method, path in pairs}


def authorize(page: Page, token: str) -> None:
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").fill(token)
    dialog.get_by_role("button", name="Apply credentials").click()
    expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    dialog.get_by_role("button", name="Close", exact=True).click()
    expect(dialog).to_be_hidden()


def operation(page: Page, method: str, path: str) -> Locator:
    return page.locator(f".opblock-{method}").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    )


def test_docs_work_offline_and_try_it_out_with_a_token(docs_server: Console, tabs: Tabs) -> None:
    with docs_server.api("writer") as api:
        created = api.post("/users/ada", json={"first_name": "Ada", "last_name": "Lovelace"})
        assert created.status_code == 201, created.text
    with docs_server.api("reader") as api:
        document = api.get("/openapi.json").json()
    expected = operations(document)
    assert ("GET", "/users/{userid}") in expected

    page = tabs.open()
    left = loopback_only(page)
    page.goto(f"{docs_server.server.url}/docs")
    # Without a token the document is not readable: the page says how to get in.
    expect(page.get_by_text("requires an API token")).to_be_visible(timeout=RENDERED)
    expect(page.locator(".opblock")).to_have_count(0)

    authorize(page, docs_server.tokens["reader"])
    expect(page.locator(".opblock")).to_have_count(len(expected), timeout=RENDERED)
    assert listed(page) == expected

    block = operation(page, "get", "/users/{userid}")
    block.locator(".opblock-summary").first.click()
    block.get_by_role("button", name="Try it out").click()
    block.locator('input[placeholder="userid"]').fill("ada")
    block.get_by_role("button", name="Execute").click()
    answer = block.locator(".live-responses-table .response")
    expect(answer.locator(".response-col_status")).to_have_text("200")
    expect(answer.locator(".response-col_description pre").first).to_contain_text('"userid": "ada"')
    expect(answer).to_contain_text("Lovelace")
    expect(block.locator(".curl-command")).to_contain_text("Authorization: Bearer")
    assert left == [], f"requests that left loopback: {left}"


def test_a_refused_token_is_said_so(docs_server: Console, tabs: Tabs) -> None:
    page = tabs.open()
    left = loopback_only(page)
    page.goto(f"{docs_server.server.url}/docs")
    expect(page.get_by_text("requires an API token")).to_be_visible(timeout=RENDERED)
    authorize(page, "not-a-token")
    expect(page.get_by_text("refused that token")).to_be_visible()
    expect(page.locator(".opblock")).to_have_count(0)
    assert left == [], f"requests that left loopback: {left}"


def test_front_page_links_work(docs_server: Console, tabs: Tabs) -> None:
    page = tabs.open()
    left = loopback_only(page)
    base = docs_server.server.url
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="grouped-users")).to_be_visible()
    expect(page.get_by_text("README.md")).to_be_visible()

    page.get_by_role("link", name="API documentation").click()
    expect(page).to_have_url(f"{base}/docs")
    expect(page.get_by_role("button", name="Authorize").first).to_be_visible(timeout=RENDERED)

    page.go_back()
    page.get_by_role("link", name="Admin console").click()
    expect(page).to_have_url(f"{base}/ui")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    page.go_back()
    with page.expect_response(f"{base}/healthz") as health:
        page.get_by_role("link", name="Health").click()
    assert health.value.status == 200

    # The document answers a browser (no token) 401, and a reader's request 200.
    page.go_back()
    with page.expect_response(f"{base}/openapi.json") as openapi:
        page.get_by_role("link", name="OpenAPI document").click()
    assert openapi.value.status == 401
    with docs_server.api("reader") as api:
        assert api.get("/openapi.json").status_code == 200
    assert left == [], f"requests that left loopback: {left}"


def test_docs_list_every_operation_at_once_with_auth_disabled(
    open_console: Console, tabs: Tabs
) -> None:
    """`make run`: no token needed, so the document is there when the page opens."""
    with open_console.api() as api:
        expected = operations(api.get("/openapi.json").json())
    page = tabs.open()
    left = loopback_only(page)
    page.goto(f"{open_console.server.url}/docs")
    expect(page.locator(".opblock")).to_have_count(len(expected), timeout=RENDERED)
    assert listed(page) == expected
    assert left == [], f"requests that left loopback: {left}"
