"""Schemathesis fuzzes the API from its own /openapi.json.

Four checks and no others: not_a_server_error, response_schema_conformance,
status_code_conformance and content_type_conformance. Runs are reproducible: a
fixed seed (schemathesis derives each operation's from it), Hypothesis
derandomized, no example database, and every test (and every stateful scenario)
starts from the same data. On each backend, SQLite and PostgreSQL:

- `test_fuzz`, one test per operation: schemathesis's examples, coverage and
  fuzzing phases, with valid and invalid data. Requests are counted: once every
  operation has run, there must have been at least MIN_REQUESTS.
- `test_fuzz_stateful`: link-based stateful testing. The document declares no
  links; schemathesis infers them from the response schemas and path parameters
  (GET /users -> /users/{userid}, POST /groups/{name} -> its members, ...) and
  feeds real responses into the next requests.

Two constraints shape the set-up:

- `schemathesis.pytest.from_fixture` fails under pytest 9.2 (it reads
  `Node._nodeid`, which pytest no longer has). The schema is therefore loaded at
  import from an app that never touches its database, and each fuzzed app is
  checked to serve the same document.
- schemathesis runs an ASGI app on an event loop in a thread of its own, and an
  asyncpg or aiosqlite connection belongs to the loop that opened it, so the
  `database` fixture (opened on the test's loop) cannot be shared: its
  connections fail with "attached to a different loop". Each fuzzed app opens
  its database at startup, as `grouped-users serve` does, and
  `shutdown_lifespans()` closes it on that same loop. `fresh_data` resets the
  data over a connection of its own, on a loop of its own.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any, cast

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import Case, CheckFunction, Response
from schemathesis.checks import not_a_server_error
from schemathesis.generation.stateful import APIStateMachine
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import create_app
from app.auth import Actor, Role
from app.db import Database, create_database
from app.schemas import UserRecordIn
from app.service import groups, users
from app.settings import Settings

SEED = 20250605
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
# Stateless: examples per operation in the fuzzing phase (on top of the examples
# and coverage phases). Stateful: scenarios, and at most this many steps in each.
MAX_EXAMPLES = 50
SCENARIOS = 60
MAX_STEPS = 10
# Requests per backend, across all operations (at least 1,000).
MIN_REQUESTS = 1000
MIN_STATEFUL_REQUESTS = 500
MIN_LINKED_SUCCESSES = 5

# What every test starts from: the users and groups the document's examples name,
# and a group without members.
TABLES = ("memberships", "users", "groups", "tokens", "audit")
GROUPS = ("admins", "users", "staff")
USERS = {
    "jsmith": UserRecordIn(first_name="Joe", last_name="Smith", groups=["admins", "users"]),
    "mjones": UserRecordIn(first_name="Mary", last_name="Jones", groups=["users"]),
}


def fuzz_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"deterministic": True, "database": "none", "max-examples": MAX_EXAMPLES},
        }
    )


def local(app: ASGIApp) -> ASGIApp:
    """`app` as a local client reaches it: schemathesis' ASGI client sends
    `Host: testserver`, which auth-disabled mode (loopback only) refuses."""

    async def with_loopback_host(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
            scope = {**scope, "headers": [*headers, (b"host", b"localhost")]}
        await app(scope, receive, send)

    return with_loopback_host


# Only /openapi.json is asked of this app: nothing reaches its database.
_docs_app = create_app(
    Settings(database_url="sqlite+aiosqlite:///:memory:", auth="disabled", webhook_deliver=False)
)
DOCUMENT = copy.deepcopy(_docs_app.openapi())
schema = schemathesis.openapi.from_asgi("/openapi.json", local(_docs_app), config=fuzz_config())
OPERATIONS = frozenset(
    f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items() for method in item
)


def backend(settings: Settings) -> str:
    return "sqlite" if settings.is_sqlite else "postgresql"


async def reset(database: Database) -> None:
    """Empty every table, then create USERS and GROUPS."""
    actor = Actor("fuzz-setup", Role.admin)
    async with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            tables = ", ".join(TABLES)
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        else:
            for table in (*TABLES, "sqlite_sequence"):
                await connection.execute(text(f"DELETE FROM {table}"))
    for name in GROUPS:
        async with database.writer() as session:
            await groups.create_group(session, actor=actor, name=name)
    for userid, record in USERS.items():
        async with database.writer() as session:
            await users.create_user(session, actor=actor, userid=userid, record=record)


@pytest.fixture
def fresh_data(settings: Settings) -> Iterator[Callable[[], None]]:
    """Puts the database back to the same data, over a connection of its own."""
    with asyncio.Runner() as runner:
        database = create_database(settings)
        try:
            yield lambda: runner.run(reset(database))
        finally:
            runner.run(database.dispose())


@pytest.fixture
def fuzz_app(settings: Settings, fresh_data: Callable[[], None]) -> Iterator[ASGIApp]:
    """The app under test (auth disabled), on fresh data; it opens its database itself."""
    fresh_data()
    # No webhook sender in the background: no webhook is registered here, and
    # schemathesis ends each app's lifespan from another event loop.
    app = create_app(settings.model_copy(update={"webhook_deliver": False}))
    assert app.openapi() == DOCUMENT
    try:
        # One wrapper for the whole test: schemathesis starts an app's
        # lifespan once per app object it is given.
        yield local(app)
    finally:
        asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def generated() -> Iterator[defaultdict[str, Counter[str]]]:
    """Requests sent by test_fuzz, by backend and operation."""
    counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
    yield counts
    for name, by_operation in counts.items():
        # Only a run of every operation (not a -k selection) must reach the total.
        if set(by_operation) == OPERATIONS:
            total = sum(by_operation.values())
            assert total >= MIN_REQUESTS, f"{name}: {total} requests: {dict(by_operation)}"


@schema.parametrize()
# The app and its data live through all the examples of an operation, on purpose.
@hypothesis.settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz(
    case: Case[Any],
    fuzz_app: ASGIApp,
    settings: Settings,
    generated: defaultdict[str, Counter[str]],
) -> None:
    """Each operation answers only what its document declares, and never a 5xx."""
    generated[backend(settings)][case.operation.label] += 1
    case.call_and_validate(app=fuzz_app, checks=CHECKS)


def test_fuzz_stateful(fuzz_app: ASGIApp, fresh_data: Callable[[], None]) -> None:
    """Sequences of calls linked by their data hold the same promises."""
    document = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=fuzz_config())
    steps: Counter[tuple[str, int]] = Counter()

    def setup(machine: APIStateMachine) -> None:
        # Each scenario starts from the same data: generation must not depend
        # on what the scenarios before it left behind.
        fresh_data()

    def validate_response(
        machine: APIStateMachine,
        response: Response,
        case: Case[Any],
        additional_checks: list[CheckFunction] | None = None,
        **kwargs: Any,
    ) -> None:
        steps[case.operation.label, response.status_code] += 1
        case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)

    machine = cast(
        "type[APIStateMachine]",
        type(
            "FuzzStateMachine",
            (document.as_state_machine(),),
            {"setup": setup, "validate_response": validate_response},
        ),
    )
    hypothesis.seed(SEED)(machine)
    machine.run(
        settings=hypothesis.settings(
            max_examples=SCENARIOS,
            stateful_step_count=MAX_STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
    )
    assert sum(steps.values()) >= MIN_STATEFUL_REQUESTS, steps
    # Operations on one resource get their path from an earlier response:
    # without working links they would never see a 2xx here.
    linked = {label for label, status in steps if "{" in label and 200 <= status < 300}
    assert len(linked) >= MIN_LINKED_SUCCESSES, steps


# Refusals a schema-valid request may still get, as they depend on what is
# stored: a target missing or present, a stale If-Match, a reference to a
# user or group that does not exist, a cursor this server never gave out.
STATEFUL_REFUSALS = frozenset(
    {
        "user_not_found",
        "group_not_found",
        "webhook_not_found",
        "delivery_not_found",
        "membership_not_found",
        "token_not_found",
        "user_exists",
        "group_exists",
        "token_exists",
        "precondition_failed",
        "unknown_groups",
        "unknown_users",
        "invalid_cursor",
    }
)


def positive_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "positive",
                "deterministic": True,
                "database": "none",
                "max-examples": 25,
            },
        }
    )


# SCIM's own document (the /scim/v2 routes) is a translator's, with errors of
# SCIM's shape; this holds the core API to its document.
positive_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", local(_docs_app), config=positive_config()
).exclude(path_regex="^/scim")


def _userid_mismatch(case: Case[Any]) -> bool:
    """The body's userid differs from the path's: a rule JSON Schema cannot state."""
    body = case.body if isinstance(case.body, dict) else {}
    path = case.path_parameters or {}
    return "userid" in body and body["userid"] != path.get("userid")


@positive_schema.parametrize()
@hypothesis.settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_schema_valid_requests_are_refused_only_for_stored_state(
    case: Case[Any], fuzz_app: ASGIApp
) -> None:
    """Every rule the server enforces on a request's form is in the document."""
    response = case.call(app=fuzz_app)
    if response.status_code < 400:
        return
    code = response.json().get("code")
    if code == "invalid_record" and _userid_mismatch(case):
        return
    # Where a webhook's host resolves to (DNS: state outside the document).
    if code == "invalid_webhook" and [e["field"] for e in response.json()["errors"]] == ["url"]:
        return
    sent = case.as_curl_command()
    assert code in STATEFUL_REFUSALS, f"{response.status_code} {response.text} for {sent}"
