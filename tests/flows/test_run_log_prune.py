"""`catalog_ops.refresh_runs` does not grow forever: each run deletes rows older than
REFRESH_RUNS_KEEP_DAYS, except the newest published run (/metrics reads its build and rows) and
the newest run that built (the flow's change check reads its status), and never a 'running' row.

Rows are inserted with hand-picked ages and statuses; the expected survivors are listed by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from flows.run_log import start_run_log
from pricecat.config import Settings
from tests import helpers

#: (label, status, age in days) in insertion (run_id) order
ROWS = [
    ("old-published", "published", 50),
    ("newest-published", "published", 40),
    ("old-failed", "failed", 35),
    ("old-noop", "noop", 40),
    ("old-skipped", "skipped", 31),
    ("recent-noop", "noop", 29),
    ("stuck-running", "running", 60),
    ("newest-built", "aborted", 33),
]


@pytest.fixture(scope="module")
def settings(base_settings: Settings) -> Iterator[Settings]:
    with helpers.throwaway_database(base_settings, "pricecat_prune") as settings:
        yield settings.model_copy(update={"refresh_runs_keep_days": 30})


def _reset(settings: Settings, rows: list[tuple[str, str, int]]) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute("delete from catalog_ops.refresh_runs")
            for label, status, days in rows:
                await conn.execute(
                    "insert into catalog_ops.refresh_runs (flow_run_id, status, started_at) "
                    "values ($1, $2, now() - make_interval(days => $3))",
                    label, status, days,
                )
        finally:
            await conn.close()

    asyncio.run(go())


def _labels(settings: Settings) -> list[str | None]:
    rows = helpers.fetch(
        settings, "select flow_run_id from catalog_ops.refresh_runs order by run_id"
    )
    return [r["flow_run_id"] for r in rows]


def test_a_run_deletes_old_rows_but_keeps_what_is_read(settings: Settings) -> None:
    _reset(settings, ROWS)
    asyncio.run(start_run_log.fn(settings, "this-run", "noop"))
    # gone: old-published (not the newest published), old-failed (an older run that built),
    # old-noop and old-skipped (older than 30 days); kept: recent-noop (29 days), stuck-running
    # (never deleted), newest-published and newest-built (aborted, 33 days: read by the flow)
    assert _labels(settings) == [
        "newest-published", "recent-noop", "stuck-running", "newest-built", "this-run",
    ]


def test_old_rows_go_when_no_run_ever_published(settings: Settings) -> None:
    _reset(settings, [("old-noop", "noop", 45), ("old-skipped", "skipped", 40)])
    asyncio.run(start_run_log.fn(settings, "this-run", "noop"))
    assert _labels(settings) == ["this-run"]
