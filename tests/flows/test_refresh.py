"""The refresh-catalog flow end to end: real Postgres, Redis and dbt under Prefect's test harness.

The tests share one throwaway database and run in file order: publish → a failing dbt test keeps
the published data → a run while the lock is held is skipped → readers survive another swap.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from flows.build import STATE_TABLES
from flows.refresh import (
    REFRESH_LOCK_KEY,
    DbtBuildFailed,
    TransientError,
    describe_failures,
    is_transient,
    run_refresh,
    run_refresh_cli,
)
from pricecat.config import Settings
from pricecat.generation import GENERATION_SQL
from tests import helpers
from tests.fixtures.expected import QUARANTINED
from tests.fixtures.snapshots import LISTINGS, ROWS
from tests.flows.sources import broken_source

# the accepted rows' slugs and offers (BAD_LISTINGS are quarantined)
SLUGS = sorted({listing.slug for listing in LISTINGS})
SLUG_SELLERS = {(listing.slug, listing.seller) for listing in LISTINGS}
MAX_SCRAPED_AT = max(r["scraped_at"] for r in ROWS)


def generation(settings: Settings) -> int:
    """The published build id (0 while nothing is published)."""
    if not helpers.fetch(settings, "select to_regclass('catalog.catalog_build_info') as t")[0]["t"]:
        return 0
    return int(helpers.fetch(settings, GENERATION_SQL)[0]["build_id"])


def last_run(settings: Settings) -> asyncpg.Record:
    rows = helpers.fetch(
        settings, "select * from catalog_ops.refresh_runs order by run_id desc limit 1"
    )
    assert rows, "no refresh_runs row"
    return rows[0]


def schemas(settings: Settings) -> set[str]:
    rows = helpers.fetch(
        settings,
        "select nspname from pg_namespace where nspname like 'catalog%' order by nspname",
    )
    return {r["nspname"] for r in rows}


def published_rows(settings: Settings) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    slugs = helpers.fetch(settings, "select * from catalog.catalog_slug_summary order by slug")
    sellers = helpers.fetch(
        settings, "select * from catalog.catalog_slug_seller_summary order by slug, seller"
    )
    return [tuple(r) for r in slugs], [tuple(r) for r in sellers]


def table_oid(settings: Settings) -> int:
    oid: int = helpers.fetch(
        settings, "select to_regclass('catalog.catalog_slug_summary')::oid as oid"
    )[0]["oid"]
    return oid


@pytest.fixture(scope="module")
def first_publish(prefect_harness: None, flow_settings: Settings) -> dict[str, Any]:
    before = generation(flow_settings)
    state = run_refresh(flow_settings)
    return {"state": state, "generation_before": before}


def test_refresh_publishes_and_bumps_generation(
    first_publish: dict[str, Any], flow_settings: Settings
) -> None:
    state = first_publish["state"]
    assert state.is_completed(), state.message
    if os.geteuid() == 0:  # root may renice the build's Postgres backends (pricecat/priority.py)
        assert state.result()["build_backends_reniced"] >= 1

    # the build schema became `catalog`; nothing is left behind
    assert schemas(flow_settings) == {"catalog", "catalog_ops", "catalog_state"}
    slugs = helpers.fetch(
        flow_settings, "select slug from catalog.catalog_slug_summary order by slug"
    )
    assert [r["slug"] for r in slugs] == SLUGS
    pairs = helpers.fetch(
        flow_settings, "select slug, seller from catalog.catalog_slug_seller_summary"
    )
    assert {(r["slug"], r["seller"]) for r in pairs} == SLUG_SELLERS
    assert len(pairs) == len(SLUG_SELLERS)

    # a new build id, never used before (the sequence lives outside the swapped schemas)
    assert generation(flow_settings) > first_publish["generation_before"]

    run = last_run(flow_settings)
    assert run["status"] == "published"
    assert run["error"] is None
    assert run["finished_at"] is not None and run["finished_at"] >= run["started_at"]
    assert run["slug_rows"] == len(SLUGS)
    assert run["slug_seller_rows"] == len(SLUG_SELLERS)
    assert run["generation"] == generation(flow_settings)
    assert run["source_max_scraped_at"] == MAX_SCRAPED_AT
    # the fixture's newest snapshot is days old: stale is recorded (and warned), not fatal
    assert run["freshness_status"] == "error"
    assert run["source_age_seconds"] > 3600
    timings = helpers.fetch(
        flow_settings, "select timings, mart_rows from catalog_ops.refresh_runs where run_id = $1",
        run["run_id"],
    )[0]
    import json

    assert {"changes", "build", "publish"} <= set(json.loads(timings["timings"]))
    # dbt's per-node times: every model and test by name; the models' sum is dbt_models
    step_times = json.loads(timings["timings"])
    nodes = step_times["dbt_nodes"]
    assert {"model.int_seller_offers_merged", "model.catalog_slug_summary",
            "test.unique_catalog_slug_summary_slug"} <= set(nodes)
    assert sum(v for k, v in nodes.items() if k.startswith("model.")) == pytest.approx(
        step_times["dbt_models"], abs=0.01
    )
    # the seed checks (tag seed_check) are left to the test suite; the marts' tests run
    assert "test.assert_seller_priority_rule_holds" in nodes
    assert not {"test.assert_availability_rules_are_exclusive",
                "test.assert_availability_corpus_is_classified",
                "test.unique_seller_priority_seller", "seed.availability_corpus"} & set(nodes)
    assert "seed.availability_rules" in nodes  # staging reads it
    # statistics only on the columns a model names in meta.analyze_columns (not price_points)
    analyzed = helpers.fetch(
        flow_settings,
        "select tablename, attname from pg_stats where schemaname in ('catalog', 'catalog_state')"
        " and tablename in ('catalog_slug_seller_summary', 'int_seller_offers_merged')",
    )
    assert {(r["tablename"], r["attname"]) for r in analyzed} == {
        (t, c) for t in ("catalog_slug_seller_summary", "int_seller_offers_merged")
        for c in ("slug", "seller")
    } | {("catalog_slug_seller_summary", "seller_priority")}
    # the incremental state was vacuumed after the publish: no dead rows left
    dead = helpers.fetch(
        flow_settings,
        "select relname, n_dead_tup, vacuum_count from pg_stat_user_tables"
        " where schemaname = 'catalog_state'",
    )
    vacuumed = {r["relname"]: r["vacuum_count"] for r in dead}
    state_tables = {t.split(".")[1] for t in STATE_TABLES}
    assert state_tables >= {"int_seller_offers_merged", "merged_snapshot_ids"}
    assert all((vacuumed.get(t) or 0) >= 1 for t in state_tables), vacuumed
    deal_events = helpers.fetch(
        flow_settings, "select count(*) as n from catalog.catalog_deal_events"
    )[0]["n"]
    assert json.loads(timings["mart_rows"]) == {
        "catalog_slug_summary": len(SLUGS),
        "catalog_slug_seller_summary": len(SLUG_SELLERS),
        "catalog_slug_seller_deals": len(SLUG_SELLERS),
        "catalog_slug_market_lows": len(SLUGS),
        "catalog_deal_events": deal_events,
        "catalog_quarantined_snapshots": len(QUARANTINED),
        "int_price_snapshots_arrived": len(ROWS),  # the first build takes in every raw row
    }
    assert float(run["duration_seconds"]) >= sum(
        json.loads(timings["timings"])[k] for k in ("changes", "build", "publish")
    )

    # the API's read-only role can read the freshly published schema
    async def count_as_api() -> int:
        conn = await asyncpg.connect(flow_settings.api_database_url)
        try:
            n: int = await conn.fetchval("select count(*) from catalog.catalog_slug_summary")
            return n
        finally:
            await conn.close()

    assert asyncio.run(count_as_api()) == len(SLUGS)


def test_failing_dbt_node_publishes_nothing(
    first_publish: dict[str, Any], flow_settings: Settings
) -> None:
    """Bad raw rows cannot fail a build any more (they are quarantined); a broken source can:
    the staging model fails when a raw column it reads is missing."""
    before_rows = published_rows(flow_settings)
    before_oid = table_oid(flow_settings)
    before_generation = generation(flow_settings)

    with broken_source(flow_settings):
        from types import SimpleNamespace

        # nothing new in the raw table: without --full the run would be a no-op
        assert run_refresh_cli(flow_settings, SimpleNamespace(full=True)) == 1

        # `catalog` is the very same relation holding the very same rows
        assert table_oid(flow_settings) == before_oid
        assert published_rows(flow_settings) == before_rows
        assert generation(flow_settings) == before_generation

        run = last_run(flow_settings)
        assert run["status"] == "failed"
        assert run["finished_at"] is not None
        assert "stg_scraper__product_price_snapshots" in run["error"]
        assert run["slug_rows"] is None and run["generation"] is None
        # the failed build stays in catalog_build for inspection until the next run
        assert "catalog_build" in schemas(flow_settings)


def test_bad_raw_rows_are_quarantined_and_the_good_ones_published(
    first_publish: dict[str, Any], flow_settings: Settings
) -> None:
    """A negative price, an NBSP-only slug and a good new game arrive: the refresh publishes the
    game, lists the two bad rows with their reasons and counts them in the run log."""
    newest = MAX_SCRAPED_AT + timedelta(minutes=1)
    template = {**ROWS[0], "scraped_at": newest, "seller": "tlamagames", "availability": "Skladem"}
    new_rows = [
        {**template, "product_name_normalized": "nova-hra", "product_name_original": "Nová hra",
         "price": Decimal("100.00")},
        {**template, "product_name_normalized": "nova-hra-2", "price": Decimal("-5.00")},
        {**template, "product_name_normalized": "\u00a0", "price": Decimal("50.00")},
    ]
    helpers.load_rows(flow_settings, new_rows)
    try:
        assert run_refresh_cli(flow_settings, None) == 0
        slugs = [r["slug"] for r in helpers.fetch(
            flow_settings, "select slug from catalog.catalog_slug_summary order by slug"
        )]
        assert slugs == sorted([*SLUGS, "nova-hra"])
        listed = helpers.fetch(
            flow_settings,
            "select slug, reason from catalog.catalog_quarantined_snapshots where scraped_at = $1",
            newest,
        )
        assert sorted((r["slug"], r["reason"]) for r in listed) == [
            ("nova-hra-2", "negative_price"), ("\u00a0", "blank_slug"),
        ]
        run = last_run(flow_settings)
        assert run["status"] == "published"
        assert run["slug_rows"] == len(SLUGS) + 1
        import json

        assert json.loads(helpers.fetch(
            flow_settings, "select mart_rows from catalog_ops.refresh_runs where run_id = $1",
            run["run_id"],
        )[0]["mart_rows"])["catalog_quarantined_snapshots"] == len(QUARANTINED) + 2
    finally:
        # the raw table is append-only: rows taken back need a full rebuild of the state
        helpers.fetch(
            flow_settings, "delete from public.product_price_snapshots where scraped_at = $1",
            newest,
        )
        assert run_refresh(flow_settings, full=True).is_completed()


def test_second_run_is_skipped_while_lock_is_held(
    first_publish: dict[str, Any], flow_settings: Settings
) -> None:
    before_rows = published_rows(flow_settings)
    before_generation = generation(flow_settings)
    runs_before = helpers.fetch(flow_settings, "select count(*) as n from catalog_ops.refresh_runs")

    loop = asyncio.new_event_loop()
    holder = loop.run_until_complete(asyncpg.connect(flow_settings.database_url))
    try:
        assert loop.run_until_complete(
            holder.fetchval("select pg_try_advisory_lock($1::bigint)", REFRESH_LOCK_KEY)
        )
        state = run_refresh(flow_settings)
    finally:
        loop.run_until_complete(holder.close())
        loop.close()

    assert state.is_completed()
    assert "skipped" in (state.message or "")
    run = last_run(flow_settings)
    assert run["status"] == "skipped"
    assert run["finished_at"] is not None
    runs_after = helpers.fetch(flow_settings, "select count(*) as n from catalog_ops.refresh_runs")
    assert runs_after[0]["n"] == runs_before[0]["n"] + 1
    assert generation(flow_settings) == before_generation
    assert published_rows(flow_settings) == before_rows


class Reader(threading.Thread):
    """A steady stream of API-like queries (asyncpg, no explicit transaction, cached statements)."""

    def __init__(self, dsn: str, slug: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.slug = dsn, slug
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.errors: list[str] = []
        self.names: set[str] = set()
        self.oids: list[int] = []
        self.queries = 0

    def run(self) -> None:
        asyncio.run(self.main())

    async def main(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        pool = await asyncpg.create_pool(self.dsn, min_size=2, max_size=2)
        assert pool is not None
        try:
            while not self.stop.is_set():
                try:
                    row = await conn.fetchrow(
                        "select slug, name, min_price, sellers"
                        " from catalog.catalog_slug_summary where slug = $1",
                        self.slug,
                    )
                    sellers = await pool.fetch(
                        "select seller, current_price, price_points"
                        " from catalog.catalog_slug_seller_summary where slug = $1"
                        " order by seller_priority",
                        self.slug,
                    )
                    page = await pool.fetch(
                        "select * from catalog.catalog_slug_summary order by name limit 5"
                    )
                    oid = await conn.fetchval(
                        "select to_regclass('catalog.catalog_slug_summary')::oid"
                    )
                    if row is None or not sellers or len(page) != 5 or oid is None:
                        self.errors.append(f"incomplete answer: {row} {len(sellers)} {len(page)}")
                    else:
                        self.names.add(row["name"])
                        if not self.oids or self.oids[-1] != oid:
                            self.oids.append(oid)
                    self.queries += 1
                except Exception as exc:  # every error counts, whatever its kind
                    self.errors.append(repr(exc))
                self.ready.set()
                await asyncio.sleep(0.005)
        finally:
            await pool.close()
            await conn.close()


def test_readers_survive_the_schema_swap(
    first_publish: dict[str, Any], flow_settings: Settings
) -> None:
    before_generation = generation(flow_settings)
    reader = Reader(flow_settings.api_database_url, SLUGS[0])
    reader.start()
    try:
        assert reader.ready.wait(30)
        state = run_refresh(flow_settings, full=True)  # nothing new: only a full run publishes
        queries_at_publish = reader.queries
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while reader.queries < queries_at_publish + 20 and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
    finally:
        reader.stop.set()
        reader.join(30)

    assert state.is_completed(), state.message
    assert last_run(flow_settings)["status"] == "published"
    assert generation(flow_settings) > before_generation
    assert reader.errors == []
    assert reader.queries > queries_at_publish + 10 > 10
    # the reader saw the old and the new relation, one after the other
    assert len(reader.oids) == 2
    assert len(reader.names) == 1


def test_redis_down_still_publishes_a_new_generation(
    first_publish: dict[str, Any], flow_settings: Settings
) -> None:
    """The generation is the published build id, not a Redis counter: a refresh with Redis
    unreachable publishes and the API's generation still moves on."""

    before_generation = generation(flow_settings)
    before_oid = table_oid(flow_settings)
    # nothing listens there
    no_redis = flow_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})

    state = run_refresh(no_redis, full=True)

    assert state.is_completed(), state.message
    run = last_run(flow_settings)
    assert run["status"] == "published"
    assert run["slug_rows"] == len(SLUGS)
    assert table_oid(flow_settings) != before_oid
    assert generation(flow_settings) > before_generation
    assert run["generation"] == generation(flow_settings)


def test_nothing_new_is_a_noop_and_new_rows_publish(
    first_publish: dict[str, Any], flow_settings: Settings
) -> None:
    """No new raw row: status 'noop', no dbt, `catalog` and the build id untouched, about a
    second of work. One new row: the next run publishes it."""
    before_rows, before_oid = published_rows(flow_settings), table_oid(flow_settings)
    before_generation = generation(flow_settings)

    state = run_refresh(flow_settings)

    assert state.is_completed(), state.message
    assert "noop" in (state.message or "")
    run = last_run(flow_settings)
    assert run["status"] == "noop" and run["generation"] is None
    assert float(run["duration_seconds"]) < 3.0
    assert run["source_max_scraped_at"] is not None
    assert table_oid(flow_settings) == before_oid
    assert generation(flow_settings) == before_generation
    assert published_rows(flow_settings) == before_rows
    assert "catalog_build" not in schemas(flow_settings)

    newest = MAX_SCRAPED_AT + timedelta(minutes=5)
    helpers.load_rows(flow_settings, [{**ROWS[0], "scraped_at": newest, "price": Decimal("1.00")}])
    try:
        state = run_refresh(flow_settings)
        assert state.is_completed(), state.message
        run = last_run(flow_settings)
        assert run["status"] == "published"
        assert generation(flow_settings) > before_generation
        current = helpers.fetch(
            flow_settings,
            "select current_price from catalog.catalog_slug_seller_summary"
            " where slug = $1 and seller = $2",
            ROWS[0]["product_name_normalized"], ROWS[0]["seller"],
        )
        assert current[0]["current_price"] == Decimal("1.00")
    finally:
        helpers.fetch(
            flow_settings, "delete from public.product_price_snapshots where scraped_at = $1",
            newest,
        )
        assert run_refresh(flow_settings, full=True).is_completed()


def test_schedule_is_every_minute_in_utc(prefect_harness: None) -> None:
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy
    from prefect.server.schemas.schedules import CronSchedule

    from flows.schedule import DEPLOYMENT_NAME, build_deployment

    deployment = build_deployment()
    assert deployment.name == DEPLOYMENT_NAME
    assert deployment.flow_name == "refresh-catalog"
    assert deployment.entrypoint == "flows.refresh.refresh_catalog"
    [schedule] = deployment.schedules
    assert schedule.active
    assert schedule.schedule.cron == "* * * * *"
    assert schedule.schedule.timezone == "UTC"
    # no overlap: one run at a time across the deployment, a colliding run is cancelled
    assert deployment.concurrency_limit == 1
    assert deployment.concurrency_options is not None
    assert deployment.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW

    server_schedule = CronSchedule(cron=schedule.schedule.cron, timezone="UTC")
    start = datetime(2026, 1, 1, 10, 7, tzinfo=UTC)
    dates = asyncio.run(server_schedule.get_dates(n=4, start=start))
    assert [d.strftime("%H:%M") for d in dates] == ["10:07", "10:08", "10:09", "10:10"]


def test_schedule_needs_a_prefect_server(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path)  # no profile with an API URL either
    proc = subprocess.run(
        [sys.executable, "-m", "pricecat.cli", "schedule"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "PREFECT_API_URL" in proc.stderr
    assert "prefect server start" in proc.stderr


def test_transient_errors_retry_and_test_failures_do_not() -> None:
    assert is_transient(ConnectionRefusedError(111, "Connection refused"))
    assert is_transient(asyncpg.DeadlockDetectedError("deadlock detected"))
    assert is_transient(asyncpg.SerializationError("could not serialize access"))
    assert is_transient(asyncpg.LockNotAvailableError("canceling statement due to lock timeout"))
    assert is_transient(TransientError("dbt could not connect"))
    assert not is_transient(DbtBuildFailed(["test not_null_x fail"]))
    assert not is_transient(asyncpg.UndefinedTableError("relation does not exist"))
    assert not is_transient(ValueError("bug"))


def test_failures_are_named_from_run_results() -> None:
    run_results = {
        "results": [
            {"unique_id": "model.pricecat.stg_scraper__product_price_snapshots",
             "status": "success", "message": "SELECT 95", "failures": None},
            {"unique_id": "test.pricecat.non_negative_stg_price.1a2b3c4d5e",
             "status": "fail", "message": "Got 1 result, configured to fail if != 0",
             "failures": 1},
            {"unique_id": "unit_test.pricecat.catalog_slug_summary.test_fallback",
             "status": "error", "message": "Database Error\n  syntax error at or near \"x\"",
             "failures": None},
            {"unique_id": "model.pricecat.catalog_slug_summary", "status": "skipped",
             "message": None, "failures": None},
        ]
    }
    assert describe_failures(run_results) == [
        "test non_negative_stg_price fail, 1 failing rows: Got 1 result, configured to fail"
        " if != 0",
        'unit test catalog_slug_summary.test_fallback error: Database Error / syntax error at or '
        'near "x"',
    ]


@pytest.fixture(autouse=True)
def _no_leaked_lock(flow_settings: Settings) -> Iterator[None]:
    yield
    held = helpers.fetch(
        flow_settings,
        "select count(*) as n from pg_locks where locktype = 'advisory' and objid = $1"
        " and database = (select oid from pg_database where datname = current_database())",
        REFRESH_LOCK_KEY & 0xFFFFFFFF,
    )
    assert held[0]["n"] == 0, "the refresh lock outlived the run"
