"""What a refresh run reports: its Prefect table artifact `pricecat-refresh` (published, noop and
failed runs) and the refresh gauges of the API's /metrics, read back from a real `pricecat serve`.

Its own throwaway database with the hand-made raw rows (tests/fixtures/snapshots.py); the tests
run in file order: publish → noop → failed. The row counts below are counted by hand from the
fixture: 28 slugs (LISTINGS), 46 slug + seller offers, 4 quarantined rows (BAD_LISTINGS), 102
raw rows in all (every one taken in by the first build: ids 1..102, far below the 100 000 overlap).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import httpx
import pytest

from bench.procs import pricecat_serve
from bench.prom import Samples, parse_metrics, series
from flows.refresh import run_refresh, run_refresh_cli
from flows.report import ARTIFACT_KEY, create_run_artifact
from pricecat.config import Settings
from pricecat.generation import GENERATION_SQL
from tests import helpers
from tests.flows.sources import broken_source

SLUGS = 28
OFFERS = 46
QUARANTINED = 4
RAW_ROWS = 102
#: rows per relation after the first publish (catalog_deal_events: see published_rows below)
HAND_COUNTED = {
    "catalog_slug_summary": SLUGS,
    "catalog_slug_seller_summary": OFFERS,
    "catalog_slug_seller_deals": OFFERS,  # one row per offer
    "catalog_slug_market_lows": SLUGS,  # one row per slug
    "catalog_quarantined_snapshots": QUARANTINED,
    "int_price_snapshots_arrived": RAW_ROWS,
}
STATUSES = ("published", "noop", "failed", "aborted")


@pytest.fixture(scope="module")
def report_settings(base_settings: Settings) -> Iterator[Settings]:
    with helpers.raw_fixture_database(base_settings, "pricecat_report") as settings:
        yield settings


@pytest.fixture(scope="module")
def api_url(report_settings: Settings, output_dir: Path) -> Iterator[str]:
    """`pricecat serve` (2 workers: the multiprocess metrics) reading the test database as the
    read-only API role."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DATABASE_URL=report_settings.database_url,
        API_DATABASE_URL=report_settings.api_database_url,
        REDIS_URL=report_settings.redis_url,
        CACHE_NAMESPACE=f"{report_settings.cache_namespace}:report",
        API_DB_POOL_MIN="1",
        API_DB_POOL_MAX="2",
    )
    service, url = pricecat_serve(output_dir / "flows" / "report-api.log", env, workers=2)
    with service:
        service.start()
        service.wait_http(url + "/healthz", 60)
        yield url


def scrape(url: str) -> Samples:
    r = httpx.get(url + "/metrics", timeout=20)
    assert r.status_code == 200
    return parse_metrics(r.text)


def one(samples: Samples, name: str) -> float:
    [value] = series(samples, name).values()
    return value


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(ls)[label]: v for ls, v in series(samples, name).items()}


def last_run(settings: Settings) -> Any:
    return helpers.fetch(
        settings,
        "select * from catalog_ops.refresh_runs where status <> 'skipped'"
        " order by run_id desc limit 1",
    )[0]


def build_id(settings: Settings) -> int:
    return int(helpers.fetch(settings, GENERATION_SQL)[0]["build_id"])


def deal_events(settings: Settings) -> int:
    """Not hand-counted: the event rules need the whole fixture history; counted in the table."""
    rows = helpers.fetch(settings, "select count(*) as n from catalog.catalog_deal_events")
    return int(rows[0]["n"])


def artifact(state: Any) -> tuple[dict[tuple[str, str], Any], str]:
    """The run's one `pricecat-refresh` artifact: {(section, name): value}, its description."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[ARTIFACT_KEY]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
                )
            )

    [found] = asyncio.run(read())
    assert found.type == "table"
    data = json.loads(found.data) if isinstance(found.data, str) else found.data
    table = {(row["section"], row["name"]): row["value"] for row in data}
    assert len(table) == len(data), "a (section, name) pair twice"
    return table, found.description or ""


def rows_of(table: dict[tuple[str, str], Any]) -> dict[str, int]:
    return {name: value for (section, name), value in table.items() if section == "rows"}


def assert_last_run_metrics(samples: Samples, settings: Settings, status: str) -> None:
    run = last_run(settings)
    assert run["status"] == status
    assert by_label(samples, "pricecat_refresh_last_run_status", "status") == {
        s: float(s == status) for s in STATUSES
    }
    assert one(samples, "pricecat_refresh_last_run_seconds") == pytest.approx(
        float(run["duration_seconds"]), abs=1e-6
    )
    assert one(samples, "pricecat_refresh_last_run_timestamp_seconds") == pytest.approx(
        run["finished_at"].timestamp(), abs=1e-3
    )


def test_before_any_run_metrics_have_no_refresh_status(api_url: str) -> None:
    samples = scrape(api_url)
    assert series(samples, "pricecat_refresh_last_run_status") == {}
    assert series(samples, "pricecat_refresh_published_rows") == {}


def test_published_run_reports_its_rows_timings_and_build(
    prefect_harness: None, report_settings: Settings, api_url: str
) -> None:
    state = run_refresh(report_settings)
    assert state.is_completed(), state.message
    table, description = artifact(state)
    build = build_id(report_settings)
    run = last_run(report_settings)

    assert table[("run", "status")] == "published"
    assert table[("run", "run_id")] == run["run_id"]
    assert table[("run", "build_id")] == build
    assert table[("run", "build_reason")] == "nothing published yet"
    assert table[("run", "duration_seconds")] == float(run["duration_seconds"])
    assert {"changes", "cleanup", "build", "publish"} <= {
        name for section, name in table if section == "timing"
    }
    assert rows_of(table) == {
        **HAND_COUNTED, "catalog_deal_events": deal_events(report_settings),
    }
    assert "published" in description and f"build {build}" in description

    samples = scrape(api_url)
    assert_last_run_metrics(samples, report_settings, "published")
    assert by_label(samples, "pricecat_refresh_published_rows", "relation") == {
        name: float(n) for name, n in rows_of(table).items()
    }
    assert one(samples, "pricecat_refresh_published_build_id") == build
    assert one(samples, "pricecat_published_build_id") == build
    assert 0 <= one(samples, "pricecat_published_build_age_seconds") < 600
    assert one(samples, "pricecat_quarantined_rows") == QUARANTINED


def test_noop_run_reports_the_build_still_published(
    prefect_harness: None, report_settings: Settings, api_url: str
) -> None:
    build = build_id(report_settings)
    state = run_refresh(report_settings)
    assert state.is_completed() and "noop" in (state.message or "")
    table, _ = artifact(state)

    assert table[("run", "status")] == "noop"
    assert table[("run", "build_id")] == build
    assert ("run", "build_reason") not in table
    assert {name for section, name in table if section == "timing"} == {"changes"}
    # the published build's rows, as the run that published it counted them
    assert rows_of(table) == {**HAND_COUNTED, "catalog_deal_events": deal_events(report_settings)}

    samples = scrape(api_url)
    assert_last_run_metrics(samples, report_settings, "noop")
    assert by_label(samples, "pricecat_refresh_published_rows", "relation")[
        "catalog_slug_summary"
    ] == SLUGS
    assert one(samples, "pricecat_published_build_id") == build


def test_failed_run_reports_its_error_and_the_build_kept(
    prefect_harness: None, report_settings: Settings, api_url: str
) -> None:
    build = build_id(report_settings)
    with broken_source(report_settings):
        assert run_refresh_cli(report_settings, SimpleNamespace(full=True)) == 1
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.objects import StateType

    run = last_run(report_settings)
    assert run["status"] == "failed"

    async def flow_run_state() -> Any:
        async with get_client() as client:
            [flow_run] = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run["flow_run_id"])]))
            )
            return flow_run.state

    state = asyncio.run(flow_run_state())
    assert state.type == StateType.FAILED
    table, _ = artifact(state)
    assert table[("run", "status")] == "failed"
    assert "stg_scraper__product_price_snapshots" in table[("run", "error")]
    assert table[("run", "build_id")] == build  # nothing published: the old build stays
    assert {"changes", "cleanup"} <= {name for section, name in table if section == "timing"}
    assert rows_of(table)["catalog_slug_summary"] == SLUGS

    samples = scrape(api_url)
    assert_last_run_metrics(samples, report_settings, "failed")
    assert one(samples, "pricecat_published_build_id") == build
    assert one(samples, "pricecat_refresh_published_build_id") == build


def test_an_artifact_that_cannot_be_created_does_not_fail_the_run(
    prefect_harness: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A real rejection (a key Prefect refuses) inside a flow run: a warning, no exception."""
    from prefect import flow

    @flow
    async def report_with_a_bad_key() -> UUID | None:
        return await create_run_artifact(
            7, {"status": "published", "duration_seconds": 1.5}, 3, {"x": 1}, key="Not a key!"
        )

    state = asyncio.run(report_with_a_bad_key(return_state=True))  # type: ignore[call-overload]
    assert state.is_completed(), state.message
    assert state.result() is None
    assert any(
        "could not create the Not a key! artifact of run 7" in r.getMessage()
        and r.levelname == "WARNING"
        for r in caplog.records
    )
