"""The ceiling app: a bare FastAPI route GET /users/{userid} returning a constant record.

The bench serves it with exactly the uvicorn options of `grouped-users serve`
(workers, loop, HTTP implementation, no access log, no server header) and
reports our throughput as a ratio to it: what the framework and the server
cost on this machine, right now, with no database and no middleware.

    python -m bench.ceiling --port 8100 --workers 2
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Record(BaseModel):
    first_name: str
    last_name: str
    userid: str
    groups: list[str]


RECORD = Record(first_name="Joe", last_name="Smith", userid="jsmith", groups=["admins", "users"])


def bare_app(**options: Any) -> FastAPI:
    """FastAPI with the options that bear on a request as app.api.create_app sets them:
    no OpenTelemetry hooks, no slash redirects, no docs (the floor app shares it)."""
    return FastAPI(
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        **options,
    )


def create_app() -> FastAPI:
    app = bare_app()

    @app.get("/users/{userid}", response_model=Record)
    async def get_user(userid: str) -> Record:
        return RECORD

    return app


def arguments(prog: str, description: str | None, port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log-level", default="warning")
    return parser


def serve(factory: str, args: argparse.Namespace) -> None:
    """Serve the app `factory` makes as app.cli.serve serves ours.

    Loop and HTTP implementation stay "auto" (uvloop, httptools), as the
    server's on PostgreSQL. On SQLite the server runs asyncio's loop
    (app.serving_loop); the ceiling keeps the faster uvloop, so SQLite's
    ratios are against the stronger ceiling.
    """
    uvicorn.run(
        factory,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


def main(argv: Sequence[str] | None = None) -> None:
    serve(
        "bench.ceiling:create_app",
        arguments("python -m bench.ceiling", __doc__, 8100).parse_args(argv),
    )


if __name__ == "__main__":
    main()
