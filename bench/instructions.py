"""Instructions per request, counted by valgrind: a figure that load does not move.

wrk's requests/s drift with whatever else the machine runs; the number of
instructions a worker executes per request does not. This serves a fresh
copy of the seeded 20,000-user SQLite file with one worker under
`valgrind --tool=callgrind`, sends warm-up requests, zeroes the counters,
sends N requests on one keep-alive connection, dumps the counters and
prints their total divided by N. The webhook sender is off: its
once-a-second poll would be counted against the requests, stretched by
valgrind's slowness.

Scenarios: `get`, `GET /users/{id}` of seeded ids (the same ones every
time); `post`, `POST /users/{new}` of a new user in 2 of the 200 groups,
one at a time (so each is a batch of one in the group commit; the fsync's
time is the kernel's and is not counted); `patch`, `PATCH /users/{id}` of
a seeded user's last name, as the 90/10 mix writes.

    .venv/bin/python -m bench.instructions                    # this checkout
    .venv/bin/python -m bench.instructions --scenario post
    (cd ../old && .venv/bin/python -m bench.instructions)     # another commit, same way

`--keep FILE` keeps callgrind's dump, for `callgrind_annotate FILE`: which
functions (C ones; the interpreter's and SQLite's) the instructions went to.

Needs valgrind (`apt-get install valgrind`); about a minute and a half.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.run import HOST, Directories, free_port, prepare_sqlite, server_env
from bench.seed import group_name, userid

USERS, GROUPS = 20_000, 200


def lookups(port: int, count: int, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - which ids, not secrets
    connection = http.client.HTTPConnection(HOST, port, timeout=600)
    for _ in range(count):
        connection.request("GET", f"/users/{userid(rng.randrange(USERS))}")
        _expect(connection, 200, "GET /users/{id}")
    connection.close()


def creations(port: int, count: int, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - which groups, not secrets
    connection = http.client.HTTPConnection(HOST, port, timeout=600)
    headers = {"Content-Type": "application/json"}
    for number in range(count):
        first = rng.randrange(GROUPS)
        second = (first + rng.randrange(1, GROUPS)) % GROUPS
        groups = [group_name(first), group_name(second)]
        body = {"first_name": "Bench", "last_name": f"Writer {number}", "groups": groups}
        path = f"/users/instructions-{seed}-{number}"
        connection.request("POST", path, body=json.dumps(body), headers=headers)
        _expect(connection, 201, "POST /users/{new}")
    connection.close()


def renames(port: int, count: int, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - which users, not secrets
    connection = http.client.HTTPConnection(HOST, port, timeout=600)
    headers = {"Content-Type": "application/merge-patch+json"}
    for number in range(count):
        body = json.dumps({"last_name": f"Renamed {seed}-{number}"})
        path = f"/users/{userid(rng.randrange(USERS))}"
        connection.request("PATCH", path, body=body, headers=headers)
        _expect(connection, 200, "PATCH /users/{id}")
    connection.close()


def _expect(connection: http.client.HTTPConnection, status: int, what: str) -> None:
    answer = connection.getresponse()
    answer.read()
    if answer.status != status:
        raise SystemExit(f"{what} answered {answer.status}")


SCENARIOS = {
    "get": (lookups, "GET /users/{id}"),
    "post": (creations, "POST /users/{new}"),
    "patch": (renames, "PATCH /users/{id}"),
}


def control(pid: int, command: str) -> None:
    """Tell the callgrind running as `pid` to do `command`."""
    subprocess.run(  # noqa: S603 - our own arguments
        ["callgrind_control", command, str(pid)],  # noqa: S607 - valgrind's own tool, on PATH
        check=True,
        capture_output=True,
    )


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited at start")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(1)
    raise SystemExit("the server was not ready in time")


def measure(
    scenario: str, count: int, warmup: int, *, events: bool = True, keep: Path | None = None
) -> float:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: apt-get install valgrind")
    url = prepare_sqlite(Directories().get(USERS, GROUPS))
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        env = server_env(
            database_url=url,
            auth="disabled",
            log_level="warning",
            webhook_deliver="false",
            events=str(events).lower(),
        )
        # The same string hashes every run: dicts' collisions, and so the
        # count, otherwise moved by a percent or two from run to run.
        env["PYTHONHASHSEED"] = "0"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        command += [sys.executable, "-m", "app", "serve", "--workers", "1"]
        command += ["--host", HOST, "--port", str(port)]
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        send = SCENARIOS[scenario][0]
        try:
            wait_ready(port, process)
            send(port, warmup, 1)
            control(process.pid, "-z")  # zero the counters
            send(port, count, 2)
            control(process.pid, "-d")  # dump them
        finally:
            process.terminate()
            process.wait(timeout=120)
        dump = Path(f"{out}.1").read_text()
        if keep is not None:
            shutil.copyfile(f"{out}.1", keep)
    found = re.search(r"^summary:\s*(\d+)", dump, re.MULTILINE)
    if found is None:
        raise SystemExit("no summary line in callgrind's dump")
    return int(found.group(1)) / count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=SCENARIOS, default="get")
    parser.add_argument("--requests", "--lookups", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument(
        "--events", choices=("on", "off"), default="on", help="GROUPED_USERS_EVENTS (on)"
    )
    parser.add_argument(
        "--keep", type=Path, help="keep callgrind's dump there (for callgrind_annotate)"
    )
    args = parser.parse_args(argv)
    per_request = measure(
        args.scenario, args.requests, args.warmup, events=args.events == "on", keep=args.keep
    )
    what = SCENARIOS[args.scenario][1]
    print(
        f"{per_request:,.0f} instructions per {what} "
        f"({args.requests} requests, events {args.events})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
