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

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Record(BaseModel):
    first_name: str
    last_name: str
    userid: str
    groups: list[str]


RECORD = Record(first_name="Joe", last_name="Smith", userid="jsmith", groups=["admins", "users"])


def create_app() -> FastAPI:
    # The same FastAPI options that bear on a request as app.api.create_app:
    # no OpenTelemetry hooks, no slash redirects, no docs.
    app = FastAPI(
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/users/{userid}", response_model=Record)
    async def get_user(userid: str) -> Record:
        return RECORD

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    # As app.cli.serve calls it; loop and http stay "auto" (uvloop, httptools) in both.
    uvicorn.run(
        "bench.ceiling:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
