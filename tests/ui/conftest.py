"""The console's browser tests: a real server, tokens from the CLI, headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.support.live_server import ROOT, START_TIMEOUT, STOP_TIMEOUT, LiveServer, launch
from tests.support.live_server import server_environment as environment

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1200, "height": 800}
ROLES = ("reader", "writer", "admin")


def chromium_path() -> str:
    """Debian's chromium (or GROUPED_USERS_TEST_CHROMIUM); never a downloaded browser."""
    found = os.environ.get("GROUPED_USERS_TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "The console's browser tests need Chromium and it is not installed:"
            " run 'apt-get install -y chromium' (.ci/run does), or point"
            " GROUPED_USERS_TEST_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    return found


@dataclass
class Console:
    server: LiveServer
    database_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.server.url}/ui"

    def api(self, role: str = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if self.tokens else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=10.0)


def _wait_until_up(server: LiveServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"the server exited:\n{server.log_tail()}", pytrace=False)
        with suppress(httpx.TransportError):
            if httpx.get(f"{server.url}/healthz", timeout=2.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            pytest.fail(f"the server did not answer:\n{server.log_tail()}", pytrace=False)
        time.sleep(0.1)


def _stop(server: LiveServer) -> None:
    with suppress(ProcessLookupError):
        server.process.send_signal(signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=STOP_TIMEOUT)
    server.kill()


def create_token(database_url: str, role: str) -> str:
    """`grouped-users token create`, as an operator bootstraps one; the secret is on stdout."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "token",
            "create",
            "--name",
            f"console-{role}",
            "--role",
            role,
        ],
        env=environment(database_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def serve(directory: Path, auth: str, database_url: str | None = None) -> Iterator[Console]:
    database_url = database_url or f"sqlite+aiosqlite:///{directory / 'console.db'}"
    env = {
        "GROUPED_USERS_AUTH": auth,
        # The webhooks page shows an endpoint on this machine (nothing listens there).
        "GROUPED_USERS_WEBHOOK_ALLOW_HTTP": "true",
        "GROUPED_USERS_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    server = launch(database_url, directory, env=env, name=auth)
    try:
        _wait_until_up(server)
        console = Console(server, database_url)
        if auth == "required":
            console.tokens = {role: create_token(database_url, role) for role in ROLES}
        yield console
    finally:
        _stop(server)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A server that requires tokens, with a reader, a writer and an admin token."""
    yield from serve(tmp_path_factory.mktemp("console"), "required")


@pytest.fixture(scope="module")
def open_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A server with auth disabled, as `make run` starts it."""
    yield from serve(tmp_path_factory.mktemp("open-console"), "disabled")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Tabs:
    """Pages of one browser context; every console error or page error fails the test."""

    browser: Browser
    errors: list[str] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)

    def open(self, viewport: dict[str, int] | None = None) -> Page:
        # Each tab its own context: sessionStorage (the token) is per tab anyway.
        context = self.browser.new_context(viewport=viewport or DESKTOP)  # type: ignore[arg-type]
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.pages.append(page)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        # The browser logs failed requests (the API's 4xx that the console shows) as
        # errors too; those are expected. Anything else (a CSP violation, a script
        # error) is a bug.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(f"console: {message.text}")


@pytest.fixture
def tabs(browser: Browser) -> Iterator[Tabs]:
    opened = Tabs(browser)
    yield opened
    for page in opened.pages:
        page.context.close()
    assert not opened.errors, "\n".join(opened.errors)
