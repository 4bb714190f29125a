"""Probes and metrics for operators: /healthz, /readyz, /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app import metrics
from app.api.problems import PROBLEM_JSON, http_problem
from app.db import Database
from app.migrations import current_revision, head_revision
from app.web.access import GuardedRoute

# Probes answer whoever asks: a load balancer has no token.
probes = APIRouter(tags=["operations"])
# Metrics follow the API's rule for readers.
guarded = APIRouter(tags=["operations"], route_class=GuardedRoute)


@probes.get(
    "/healthz", responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}}
)
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Touches no database."""
    return {"status": "ok"}


@probes.get(
    "/readyz",
    responses={
        200: {
            "content": {"application/json": {"example": {"status": "ready", "revision": "0002"}}}
        },
        503: {"description": "Database unreachable or schema not at head"},
    },
)
async def readyz(request: Request) -> Any:
    """Readiness: the database answers and its schema is at the head revision."""
    database: Database = request.app.state.database
    head = head_revision()
    try:
        revision = await current_revision(database.engine)
    except (SQLAlchemyError, OSError) as exc:
        return _not_ready(f"The database does not answer ({type(exc).__name__}).")
    if revision != head:
        return _not_ready(
            f"The schema is at revision {revision or 'none'}, not {head}:"
            " run 'grouped-users db upgrade'."
        )
    return {"status": "ready", "revision": revision}


def _not_ready(detail: str) -> Response:
    body = http_problem(503, detail, "not_ready")
    body["title"] = "Not ready"
    return JSONResponse(
        body, status_code=503, media_type=PROBLEM_JSON, headers={"Retry-After": "5"}
    )


@guarded.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics: requests by route and status, latency, in-flight, pool."""
    database: Database = request.app.state.database
    pool = database.engine.pool
    checked_out = getattr(pool, "checkedout", None)
    size = getattr(pool, "size", None)
    if callable(checked_out) and callable(size):
        metrics.POOL_CHECKED_OUT.set(checked_out())
        metrics.POOL_SIZE.set(size())
    metrics.TALLY.flush()
    return Response(metrics.exposition(), media_type=metrics.MEDIA_TYPE)
