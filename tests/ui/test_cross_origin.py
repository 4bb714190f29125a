"""Auth-disabled mode cannot be driven from another origin, tried in Chromium as the attack was.

A real server with authentication disabled (as `make run` starts it) on one
loopback port; the attacker's pages on a second loopback port, another
origin of the same site (127.0.0.1) or of another site (localhost). Their
requests reach the server but change nothing; the console, on the
server's own origin, still can. The DNS-rebinding page is in
test_rebinding.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.support.sockets import LOOPBACK
from tests.ui.conftest import Console, Tabs

RECORD = {"first_name": "Eve", "last_name": "Attacker", "groups": []}


def no_cors_fetch(target: str, userid: str) -> str:
    """The attack as it was: a body without Content-Type is JSON, and no-cors needs no preflight."""
    body = json.dumps(json.dumps(RECORD))
    return f"""<!doctype html><title>cute cats</title><script>
fetch({json.dumps(f"{target}/users/{userid}")}, {{
  method: "POST", mode: "no-cors", body: new Blob([{body}])
}}).then(() => {{ document.title = "sent"; }}, (e) => {{ document.title = "failed " + e; }});
</script>"""


def form_post(target: str, group: str) -> str:
    """A form posts an empty body: enough to create a group."""
    action = json.dumps(f"{target}/groups/{group}")
    return f"""<!doctype html><title>cute cats</title>
<form method="post" action={action}></form>
<script>document.forms[0].submit();</script>"""


class AttackerSite:
    """Pages of another origin, served from a second loopback port."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = pages.get(urlsplit(self.path).path)
                body = (page or "not here").encode()
                self.send_response(200 if page else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.port = self.server.server_address[1]

    def serve(self, path: str, html: str) -> None:
        self.pages[path] = html


@pytest.fixture(scope="module")
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite()
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()
        thread.join(timeout=10)


def exists(console: Console, path: str) -> bool:
    """Whether the server has this user or group, asked by a program (no Origin)."""
    with console.api() as api:
        status = api.get(path).status_code
    assert status in (200, 404), status
    return status == 200


@pytest.mark.parametrize("page_host", [LOOPBACK, "localhost"], ids=["same-site", "cross-site"])
def test_a_page_elsewhere_cannot_create_a_user(
    open_console: Console, attacker: AttackerSite, tabs: Tabs, page_host: str
) -> None:
    userid = f"eve-{page_host.replace('.', '-')}"
    attacker.serve(f"/fetch-{userid}", no_cors_fetch(open_console.server.url, userid))
    page = tabs.open()
    page.goto(f"http://{page_host}:{attacker.port}/fetch-{userid}")
    # The request was sent; its answer is opaque to the page either way.
    expect(page).to_have_title("sent")
    assert not exists(open_console, f"/users/{userid}")


@pytest.mark.parametrize("page_host", [LOOPBACK, "localhost"], ids=["same-site", "cross-site"])
def test_a_form_elsewhere_cannot_create_a_group(
    open_console: Console, attacker: AttackerSite, tabs: Tabs, page_host: str
) -> None:
    group = f"pwned-{page_host.replace('.', '-')}"
    attacker.serve(f"/form-{group}", form_post(open_console.server.url, group))
    page = tabs.open()
    with page.expect_response(f"{open_console.server.url}/groups/{group}") as posted:
        page.goto(f"http://{page_host}:{attacker.port}/form-{group}")
    assert posted.value.status == 403
    assert not exists(open_console, f"/groups/{group}")


def test_the_console_still_creates_a_user(open_console: Console, tabs: Tabs) -> None:
    page = tabs.open()
    page.goto(open_console.url)
    page.get_by_label("User ID").fill("ada-local")
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_have_text("Created user ada-local.")
    assert exists(open_console, "/users/ada-local")
