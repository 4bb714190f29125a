"""The short soak in `make test`: 16 clients for 10 s against `serve --workers 2` on PostgreSQL.

`make soak` runs the full one (tests/support/soak.py): 64 clients, 60 s, 4 workers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.soak import SoakConfig, run_soak

pytestmark = pytest.mark.anyio

SHORT = SoakConfig(seconds=10, clients=16, workers=2, database="postgresql")


async def test_short_soak_loses_nothing(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Fails with the figures, the problems found and the server's log.
    report = await run_soak(SHORT, postgres_url, tmp_path)
    assert report.stats.statuses, "no request was made"
    assert not report.stats.server_errors
    assert not report.stats.transport_errors
    with capsys.disabled():
        print("\n" + report.render())
