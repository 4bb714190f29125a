"""Issue 8: the admin console at /ui, driven in headless Chromium against a real server.

One server per module (SQLite, auth required, tokens from the CLI); each test
makes its own users and groups, so the tests do not depend on their order.
The screenshots in docs/screenshots (shown in the README) are taken here
(`make screenshots` writes them).
"""

from __future__ import annotations

import os
import re

from playwright.sync_api import Page, expect

from tests.ui.conftest import SCREENSHOTS, Console, Tabs


def screenshot(page: Page, name: str) -> None:
    """Take the page's picture; it replaces the README's copy with UPDATE_SCREENSHOTS=1.

    Every run takes it (the page must render); only `make screenshots` writes
    docs/screenshots, so that `make test` leaves the work tree as it found it
    (the audit page shows times, and pixels differ between runs).
    """
    image = page.screenshot(full_page=True, caret="hide", animations="disabled")
    assert image.startswith(b"\x89PNG"), "the screenshot is not a PNG"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / f"{name}.png").write_bytes(image)


def sign_in(page: Page, console: Console, role: str, at: str = "") -> None:
    page.goto(f"{console.url}{at}")
    page.get_by_label("API token").fill(console.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#caller")).to_have_text(f"console-{role} ({role})")


def create_user(console: Console, userid: str, first: str, last: str) -> None:
    with console.api() as api:
        body = {"first_name": first, "last_name": last}
        assert api.post(f"/users/{userid}", json=body).status_code == 201


def create_group(console: Console, name: str, members: list[str] | None = None) -> None:
    with console.api() as api:
        assert api.post(f"/groups/{name}").status_code == 201
        for userid in members or []:
            assert api.put(f"/groups/{name}/members/{userid}").status_code == 204


def test_sign_in_with_a_token(console: Console, tabs: Tabs) -> None:
    page = tabs.open()
    page.goto(console.url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    screenshot(page, "sign-in")

    # A wrong token: the API's 401 detail, next to the token field.
    token = page.get_by_label("API token")
    token.fill("gu_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    error = page.locator(f"#{token.get_attribute('id')}-error")
    expect(error).to_have_text(re.compile("A valid API token is required"))
    expect(token).to_have_attribute("aria-invalid", "true")

    token.fill(console.tokens["admin"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#caller")).to_have_text("console-admin (admin)")
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    # The token is in this tab's sessionStorage: a reload stays signed in.
    page.reload()
    expect(page.locator("#caller")).to_have_text("console-admin (admin)")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_with_auth_disabled_it_opens_directly(open_console: Console, tabs: Tabs) -> None:
    page = tabs.open()
    page.goto(open_console.url)
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    expect(page.locator("#caller")).to_have_text("anonymous (admin)")
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    expect(page.get_by_role("link", name="Audit")).to_be_visible()


def test_create_a_user_find_them_and_add_them_to_a_group(console: Console, tabs: Tabs) -> None:
    create_user(console, "grace", "Grace", "Hopper")
    create_user(console, "alan", "Alan", "Turing")
    page = tabs.open()
    sign_in(page, console, "writer")

    # Create: the form on the users page, then the new user's page.
    page.get_by_label("User ID").fill("ada")
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("heading", name="ada", exact=True)).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Created user ada.")
    expect(page.locator("#user-last-name")).to_have_text("Lovelace")

    # Search: q matches a part of a name, case-insensitively.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    page.get_by_label("Search users").fill("LOVE")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Ada Lovelace")
    page.get_by_label("Search users").fill("")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody tr")).to_have_count(3)
    screenshot(page, "users")

    # A group, created from the groups page; add ada from the group's page.
    page.get_by_role("link", name="Groups").click()
    page.get_by_label("Group name").fill("analysts")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("heading", name="analysts", exact=True)).to_be_visible()
    expect(page.locator("#group-note")).to_contain_text("has no members")
    member = page.get_by_label("User ID")
    member.press_sequentially("lov")
    # Suggestions come from GET /users?q=.
    expect(page.locator("#member-suggestions option")).to_have_count(1)
    expect(page.locator("#member-suggestions option")).to_have_attribute("value", "ada")
    member.fill("ada")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_have_text("Added ada to analysts.")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr").first).to_contain_text("Ada Lovelace")
    page.get_by_label("User ID").fill("grace")
    page.get_by_role("button", name="Add member").click()
    expect(page.locator("tbody tr")).to_have_count(2)
    screenshot(page, "group")

    # The membership, seen from the user's side.
    page.get_by_role("link", name="ada", exact=True).click()
    expect(page.get_by_role("heading", name="ada", exact=True)).to_be_visible()
    expect(page.locator("#user-groups")).to_have_text("analysts")
    screenshot(page, "user")
    with console.api("reader") as api:
        assert api.get("/users/ada").json()["groups"] == ["analysts"]

    page.locator("#user-groups").get_by_role("link", name="analysts").click()
    page.get_by_role("button", name="Remove grace from analysts").click()
    expect(page.get_by_role("status")).to_have_text("Removed grace from analysts.")
    expect(page.locator("tbody tr")).to_have_count(1)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Groups").click()
    row = page.locator("tbody tr", has_text="analysts")
    expect(row).to_contain_text("1")
    screenshot(page, "groups")


def test_a_stale_edit_in_another_tab_shows_the_conflict(console: Console, tabs: Tabs) -> None:
    create_user(console, "edsger", "Edsger", "Dijkstra")
    first, second = tabs.open(), tabs.open()
    for page in (first, second):
        sign_in(page, console, "writer", "#/users/edsger")
        expect(page.get_by_label("Last name")).to_have_value("Dijkstra")

    second.get_by_label("Last name").fill("Dijkstra-Wybe")
    second.get_by_role("button", name="Save changes").click()
    expect(second.get_by_role("status")).to_have_text("Saved.")

    first.get_by_label("First name").fill("Ed")
    first.get_by_role("button", name="Save changes").click()
    conflict = first.locator(".conflict")
    expect(conflict).to_contain_text("changed by someone else")
    expect(conflict).to_contain_text("Reload")
    expect(conflict).to_contain_text("has changed: its ETag is now")
    # Never overwritten: the other tab's edit stands, this one did not apply.
    with console.api("reader") as api:
        stored = api.get("/users/edsger").json()
    assert (stored["first_name"], stored["last_name"]) == ("Edsger", "Dijkstra-Wybe")
    screenshot(first, "conflict")

    first.get_by_role("button", name="Reload").click()
    expect(first.locator("#user-last-name")).to_have_text("Dijkstra-Wybe")
    first.get_by_label("First name").fill("Ed")
    first.get_by_role("button", name="Save changes").click()
    expect(first.get_by_role("status")).to_have_text("Saved.")
    expect(first.locator("#user-first-name")).to_have_text("Ed")


def controls(page: Page) -> list[str]:
    """The buttons and fields of the page's main part, by their text or name."""
    found: list[str] = page.locator("main").evaluate(
        """(main) => [...main.querySelectorAll('button, input')]
            .map((c) => c.tagName === 'BUTTON' ? c.textContent.trim() : `input ${c.name}`)"""
    )
    return found


def test_a_reader_sees_no_edit_controls(console: Console, tabs: Tabs) -> None:
    create_user(console, "barbara", "Barbara", "Liskov")
    create_group(console, "readers-see", ["barbara"])
    reader, writer = tabs.open(), tabs.open()
    sign_in(reader, console, "reader")
    sign_in(writer, console, "writer")
    pages = {
        "#/users": "barbara",
        "#/users/barbara": "Liskov",
        "#/groups": "readers-see",
        "#/groups/readers-see": "Barbara Liskov",
    }
    # Searching is reading: the only control a reader gets.
    search = ["input q", "Search"]
    for route, shown in pages.items():
        for page in (reader, writer):
            page.goto(f"{console.url}{route}")
            expect(page.locator("main")).to_contain_text(shown)
        assert controls(reader) == (search if route == "#/users" else []), route
        # The same page for a writer has its edit controls.
        assert set(controls(writer)) - set(search), route
    expect(reader.get_by_role("link", name="Audit")).to_be_hidden()
    screenshot(reader, "group-reader")


def test_delete_a_user_and_a_group_after_confirming(console: Console, tabs: Tabs) -> None:
    create_user(console, "linus", "Linus", "Torvalds")
    create_group(console, "kernel", ["linus"])
    page = tabs.open()
    sign_in(page, console, "writer", "#/users/linus")

    page.get_by_role("button", name="Delete user…").click()
    expect(page.get_by_text("Delete linus and all their memberships?")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("button", name="Delete linus")).to_be_hidden()
    with console.api("reader") as api:
        assert api.get("/users/linus").status_code == 200

    page.get_by_role("button", name="Delete user…").click()
    page.get_by_role("button", name="Delete linus").click()
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Deleted user linus.")
    with console.api("reader") as api:
        assert api.get("/users/linus").status_code == 404

    page.goto(f"{console.url}#/groups/kernel")
    page.get_by_role("button", name="Delete group…").click()
    page.get_by_role("button", name="Delete kernel").click()
    expect(page.get_by_role("status")).to_have_text("Deleted group kernel.")
    expect(page.locator("tbody")).not_to_contain_text("kernel")


def test_api_problems_show_their_detail_next_to_the_control(console: Console, tabs: Tabs) -> None:
    create_user(console, "donald", "Donald", "Knuth")
    page = tabs.open()
    sign_in(page, console, "writer")

    userid = page.get_by_label("User ID")
    userid.fill("donald")
    page.get_by_label("First name").fill("Don")
    page.get_by_label("Last name").fill("Knuth")
    page.get_by_role("button", name="Create user").click()
    form = page.locator("form", has=page.get_by_role("button", name="Create user"))
    expect(form.locator(".form-error")).to_have_text(
        "User 'donald' already exists; use PUT to replace it."
    )

    # A name the API refuses: its rule, next to the User ID field.
    userid.fill("Not Valid")
    page.get_by_role("button", name="Create user").click()
    error = page.locator(f"#{userid.get_attribute('id')}-error")
    expect(error).to_contain_text("'Not Valid'")
    expect(userid).to_have_attribute("aria-invalid", "true")

    page.goto(f"{console.url}#/groups")
    page.get_by_label("Group name").fill("staff")
    page.get_by_role("button", name="Create group").click()
    page.goto(f"{console.url}#/groups/staff")
    member = page.get_by_label("User ID")
    member.fill("nobody")
    page.get_by_role("button", name="Add member").click()
    expect(page.locator(f"#{member.get_attribute('id')}-error")).to_have_text(
        "There is no user 'nobody'."
    )


def test_audit_shows_the_newest_changes_by_resource_and_actor(console: Console, tabs: Tabs) -> None:
    create_user(console, "margaret", "Margaret", "Hamilton")
    with console.api("writer") as api:
        patch = {"last_name": "Hamilton-Heafield"}
        headers = {"Content-Type": "application/merge-patch+json"}
        assert api.patch("/users/margaret", json=patch, headers=headers).status_code == 200
    page = tabs.open()
    sign_in(page, console, "admin")
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()

    page.get_by_label("Resource").fill("users/margaret")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    # Newest first.
    expect(rows.nth(0)).to_contain_text("user.patch")
    expect(rows.nth(0)).to_contain_text("console-writer")
    expect(rows.nth(1)).to_contain_text("user.create")
    rows.nth(0).get_by_text("Before and after").click()
    expect(rows.nth(0).locator("pre").nth(1)).to_contain_text("Hamilton-Heafield")

    page.get_by_label("Actor").fill("console-writer")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_label("Resource").fill("")
    page.get_by_role("button", name="Filter").click()
    for text in page.locator("tbody tr td:nth-child(2)").all_inner_texts():
        assert text == "console-writer"
    page.get_by_label("Actor").fill("")
    page.get_by_role("button", name="Filter").click()
    screenshot(page, "audit")


def test_only_admins_see_the_audit_log(console: Console, tabs: Tabs) -> None:
    page = tabs.open()
    sign_in(page, console, "writer", "#/audit")
    expect(page.get_by_role("link", name="Audit")).to_be_hidden()
    expect(page.locator("main")).to_contain_text("for tokens with the admin role")
    expect(page.locator("main table")).to_have_count(0)


def test_admins_see_the_webhooks_with_their_latest_deliveries(console: Console, tabs: Tabs) -> None:
    with console.api("admin") as api:
        hook = {"url": "http://127.0.0.1:9/directory", "description": "mail-list syncer"}
        assert api.post("/webhooks", json=hook).status_code == 201
    create_group(console, "mailing")
    page = tabs.open()
    sign_in(page, console, "admin")
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="http://127.0.0.1:9/directory")).to_be_visible()
    expect(page.get_by_text("mail-list syncer")).to_be_visible()
    # Nothing listens there: the delivery is pending, its failed attempt shown
    # (the page shows what was there when it loaded, and the delivery may not
    # be queued yet, "No deliveries yet.": load it until it is).
    row = page.locator("tbody tr").first
    for _ in range(30):
        if page.locator("tbody tr").count() and "attempt" in (row.text_content() or ""):
            break
        page.wait_for_timeout(1000)
        page.reload()
    expect(row).to_contain_text("pending")
    expect(row).to_contain_text("ConnectError")

    reader = tabs.open()
    sign_in(reader, console, "reader")
    expect(reader.get_by_role("link", name="Webhooks")).to_be_hidden()


def test_it_fits_a_360_pixel_screen(console: Console, tabs: Tabs) -> None:
    create_user(console, "katherine", "Katherine", "Johnson")
    create_group(console, "narrow", ["katherine"])
    page = tabs.open({"width": 360, "height": 740})
    sign_in(page, console, "admin")
    for route in ("#/users", "#/users/katherine", "#/groups", "#/groups/narrow", "#/audit"):
        page.goto(f"{console.url}{route}")
        expect(page.locator("main h1")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{route} is {width} px wide"
    page.goto(f"{console.url}#/users")
    expect(page.locator("tbody tr").first).to_be_visible()
    screenshot(page, "users-360px")


def test_every_control_has_a_label_and_works_from_the_keyboard(
    console: Console, tabs: Tabs
) -> None:
    create_group(console, "keyboard")
    page = tabs.open()
    page.goto(console.url)
    # Sign in without the mouse: the page's title has the focus, the token field is next.
    expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("API token")).to_be_focused()
    page.keyboard.type(console.tokens["admin"])
    page.keyboard.press("Enter")
    expect(page.locator("#caller")).to_have_text("console-admin (admin)")

    unlabelled = """() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter((c) => !c.closest('[hidden]'))
        .filter((c) => c.tagName === 'BUTTON'
            ? !(c.textContent.trim() || c.getAttribute('aria-label'))
            : c.labels.length === 0)
        .map((c) => c.outerHTML)"""
    for route in ("#/users", "#/groups", "#/groups/keyboard", "#/audit"):
        page.goto(f"{console.url}{route}")
        expect(page.locator("main h1")).to_be_visible()
        assert page.evaluate(unlabelled) == [], route

    # Create a user by keyboard alone: type into the focused fields, Enter submits.
    page.goto(f"{console.url}#/users")
    page.get_by_label("User ID").focus()
    page.keyboard.type("keyboarder")
    page.keyboard.press("Tab")
    page.keyboard.type("Key")
    page.keyboard.press("Tab")
    page.keyboard.type("Board")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="keyboarder", exact=True)).to_be_visible()
    # Deleting asks first; the confirmation button takes the focus.
    page.get_by_role("button", name="Delete user…").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Delete keyboarder")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Deleted user keyboarder.")
