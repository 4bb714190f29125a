"""A DNS-rebinding page cannot use auth-disabled mode, tried in Chromium as an attacker would.

The attacker's domain first served the page, then its DNS answer changed to
127.0.0.1: the browser now takes the server for the page's own origin, and
lets the page read every answer. Chromium's resolver here maps the domain to
the loopback address; the page itself is the attacker's (routed, never
asked of the server). Its own browser: Playwright's sync API runs one
browser per module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Route, sync_playwright

from tests.support.sockets import LOOPBACK
from tests.ui.conftest import CHROMIUM_ARGS, Console, chromium_path

REBOUND = "rebound.test"
RECORD = {"first_name": "Mallory", "last_name": "Attacker", "groups": []}
# Same-origin requests to the rebound name: the page may read every answer.
ATTACK = """async () => {
  const post = (url, body) => fetch(url, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)
  });
  const token = await post("/tokens", {name: "stolen", role: "admin"});
  const user = await post("/users/mallory", RECORD);
  const read = await fetch("/users");
  return {token: [token.status, await token.text()], user: user.status, read: read.status};
}""".replace("RECORD", json.dumps(RECORD))


@pytest.fixture(scope="module")
def rebinding_browser() -> Iterator[Browser]:
    """Chromium whose resolver sends the attacker's domain to the loopback address."""
    args = [
        *CHROMIUM_ARGS,
        f"--host-resolver-rules=MAP {REBOUND} {LOOPBACK}",
        # Chromium's own guard for local addresses (not every browser has one)
        # would stop the page before the server sees it: the server must not
        # rely on it.
        "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests",
    ]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=args)
        try:
            yield launched
        finally:
            launched.close()


def attackers_page(route: Route) -> None:
    route.fulfill(status=200, content_type="text/html", body="<title>cute cats</title>")


def test_a_rebinding_page_cannot_mint_a_token_or_create_a_user(
    open_console: Console, rebinding_browser: Browser
) -> None:
    origin = f"http://{REBOUND}:{open_console.server.port}"
    context = rebinding_browser.new_context()
    try:
        page = context.new_page()
        page.route(f"{origin}/cats", attackers_page)
        page.goto(f"{origin}/cats")
        results: dict[str, Any] = page.evaluate(ATTACK)
    finally:
        context.close()
    assert results["token"][0] == 421, results
    assert "gu_" not in results["token"][1]
    assert results["user"] == 421
    assert results["read"] == 421
    with open_console.api() as api:
        assert api.get("/users/mallory").status_code == 404
        assert api.get("/tokens").json() == []
