"""The HTTP application: create_app is the one composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import __version__, metrics
from app.api import admin, events, groups, meta, ops, pages, ui, users, webhooks, whoami
from app.api.docs import install_openapi
from app.api.local_only import LocalOnly
from app.api.middleware import EdgeMiddleware
from app.api.problems import install_problem_handlers
from app.db import Database, create_database
from app.notifier import EventNotifier
from app.runtime import tune_gc
from app.scim import endpoints as scim_endpoints
from app.scim import errors as scim_errors
from app.settings import Settings, get_settings
from app.webhooks.worker import Deliverer

DESCRIPTION = """\
User records and their group memberships. Errors are `application/problem+json`
(RFC 9457) with a stable `code`; validation errors list `errors: [{field, message}]`.
"""


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """Build the app; the database is opened at startup unless one is given (tests)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier = app.state.event_notifier = EventNotifier(settings.database_url)
        await notifier.start()
        try:
            if database is not None:
                app.state.database = database
                async with _delivering(app.state.database, settings, notifier):
                    yield
                return
            app.state.database = create_database(settings)
            tune_gc()
            try:
                async with _delivering(app.state.database, settings, notifier):
                    yield
            finally:
                # What the last second of requests added, before the worker ends.
                metrics.TALLY.flush()
                await app.state.database.dispose()
        finally:
            await notifier.stop()

    app = FastAPI(
        title="grouped-users",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # The contract: a body without Content-Type is JSON.
        strict_content_type=False,
        # Paths are exact: /users/ is not /users (a redirect would turn a
        # POST to an empty userid into a 405 on the collection).
        redirect_slashes=False,
        # FastAPI's native OpenTelemetry hooks cost about 13 % of a request
        # even with no exporter; our metrics and logs are our own.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        # /openapi.json is app.api.meta's, behind the same token check as the
        # API; /docs is app.api.pages', from pinned files, never a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        openapi_tags=[
            {"name": "users", "description": "User records."},
            {"name": "groups", "description": "Groups and their members."},
            {"name": "tokens", "description": "API tokens (admin)."},
            {"name": "audit", "description": "The audit log (admin)."},
            {"name": "events", "description": "The change feed, in commit order."},
            {"name": "webhooks", "description": "Endpoints that receive the feed (admin)."},
            {"name": "operations", "description": "Probes and metrics."},
        ],
    )
    app.state.settings = settings
    if database is not None:
        app.state.database = database
    # SCIM clients read SCIM errors (RFC 7644 section 3.12), routing errors too.
    install_problem_handlers(app, routing_errors={scim_errors.PREFIX: scim_errors.http_error})
    # The last added runs first: the edge (request id, auth-disabled mode's
    # Host and Origin checks, metrics and log line, security headers, time
    # limit), then CORS when configured.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match"],
            expose_headers=["ETag", "Location", "X-Request-ID"],
        )
    app.add_middleware(
        EdgeMiddleware,
        authenticated=settings.auth == "required",
        timeout_seconds=settings.request_timeout_seconds,
        local_only=(
            None
            if settings.auth == "required"
            else LocalOnly(trusted_origins=settings.cors_origins)
        ),
    )
    # Routes are matched in this order: the hot paths first.
    _add_routes(app, users.router)
    _add_routes(app, groups.router)
    app.include_router(ops.probes)
    app.include_router(ops.guarded)
    app.include_router(admin.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(meta.router)
    app.include_router(scim_endpoints.router)
    app.include_router(scim_endpoints.search_router)
    app.include_router(whoami.router)
    app.include_router(ui.router)
    app.include_router(pages.router)
    install_openapi(app)
    return app


@asynccontextmanager
async def _delivering(
    database: Database, settings: Settings, notifier: EventNotifier
) -> AsyncIterator[None]:
    """Webhook deliveries and the feed's retention, in the background of this process."""
    if not settings.webhook_deliver:
        yield
        return
    deliverer = Deliverer(database, settings, notifier.bell)
    await deliverer.start()
    try:
        yield
    finally:
        await deliverer.stop()


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """Add a router's finished routes to the app itself, not as an included router.

    FastAPI (0.165) resolves an included router's routes again on every
    request it matches, about a tenth of a point lookup's cost. These
    routers declare their prefix, tags and route class themselves and have
    no router-level dependencies, lifespan or responses: their routes are
    complete as they are, and OpenAPI sees them the same.
    """
    app.router.routes.extend(router.routes)
