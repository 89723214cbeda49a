"""The `refresh-catalog` Prefect flow: write–audit–publish of the dbt read models, incremental.

1. lock      `pg_try_advisory_lock` on a dedicated connection held for the whole run; a second
             run while one is active records status 'skipped' and completes cleanly (run_log.py).
2. run log   a `catalog_ops.refresh_runs` row (status 'running'); rows of killed runs stuck in
             'running' become 'aborted'. Next months' raw partitions are created ahead.
3. changes   one query: the source's newest scraped_at / data age / freshness status, and whether
             any raw row is new since the last publish (changes.py). Nothing new: status 'noop',
             no dbt, no publish, `catalog` and its build id stay — the run ends in about a second.
             The state's definition files (SQL, macros, seeds) hash differently from the hash
             stored with the state (or none is stored): a full rebuild (`--full-refresh`); the
             hash is stored after the build passes.
4. cleanup   `catalog_build` and every `catalog_old_*` but the newest are dropped (publish.py).
5. build     drop + create `catalog_build`, `dbt build` (seeds, models, data tests; unit tests run
             in CI) into it (build.py). The incremental state in `catalog_state` merges only the
             new raw rows; the marts are rebuilt from it. Any failing node fails the flow, names
             the node in the log and in refresh_runs.error, and leaves `catalog` untouched.
6. publish   one short transaction: grant the API role, rename `catalog` to
             `catalog_old_<stamp>`, `catalog_build` to `catalog` (publish.py). The old schema is
             kept until a later run's cleanup: replicas may still read it. Then VACUUM of the
             incremental state (build.py), so its replaced rows' space is reused.
7. record    the published build id (the API's data generation), rows per mart, step timings
             (with dbt's time per node, `timings.dbt_nodes`), status 'published'.
8. report    a Prefect table artifact `pricecat-refresh` with the run's status, build id, step
             timings and row counts, for published, noop and failed runs (report.py); failing to
             create it only logs a warning.

Transient errors (connection refused, deadlock, serialization failure, lock timeout) retry with
backoff; a failing dbt model or test never retries (retry.py). `pricecat refresh` runs it in the
foreground (cli.py); `pricecat schedule` serves it every minute (schedule.py).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run as runtime_flow_run
from prefect.states import Completed

from flows.build import (
    PARSE_CACHE,
    PARTIAL_PARSE,
    build_models,
    copy_parse_cache,
    describe_failures,
    node_seconds,
    vacuum_state,
)
from flows.changes import check_changes, record_state_definition
from flows.cli import configure_cli_logging, run_refresh, run_refresh_cli
from flows.db import current_settings, using_settings
from flows.partitions import ensure_partitions
from flows.publish import OLD_SCHEMA_PREFIX, cleanup_leftovers, publish
from flows.report import create_run_artifact
from flows.retry import DbtBuildFailed, RefreshError, TransientError, is_transient
from flows.run_log import (
    MARTS,
    QUARANTINE,
    REFRESH_LOCK_KEY,
    acquire_lock,
    count_mart_rows,
    finish_run_log,
    published_build,
    published_generation,
    release_lock,
    start_run_log,
)
from pricecat.config import PUBLISHED_SCHEMA, Settings

__all__ = [
    "FLOW_NAME", "MARTS", "OLD_SCHEMA_PREFIX", "REFRESH_LOCK_KEY", "DbtBuildFailed",
    "RefreshError", "TransientError", "configure_cli_logging", "current_settings",
    "describe_failures", "is_transient", "node_seconds", "refresh_catalog", "run_refresh",
    "run_refresh_cli", "using_settings",
]

FLOW_NAME = "refresh-catalog"
#: A run that takes longer than this is cancelled (and releases the lock).
FLOW_TIMEOUT_SECONDS = 3600


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def _lap(timings: dict[str, Any], name: str, since: float) -> None:
    timings[name] = round(time.monotonic() - since, 3)


async def _report_unpublished(settings: Settings, run_id: int, fields: dict[str, Any]) -> None:
    """The artifact of a run that published nothing: the build still published and its rows
    as the run that published it recorded them (one query; none when that query fails)."""
    try:
        build_id, rows = await published_build(settings)
    except Exception as exc:  # noqa: BLE001 - the report must never fail the refresh
        get_run_logger().warning("could not read the published build for the report: %r", exc)
        build_id, rows = None, {}
    await create_run_artifact(run_id, fields, build_id, rows)


@flow(
    name=FLOW_NAME,
    description="Build, test and publish the dbt read models (write-audit-publish).",
    timeout_seconds=FLOW_TIMEOUT_SECONDS,
    persist_result=False,
)
async def refresh_catalog(full: bool = False) -> dict[str, Any] | State[Any]:
    settings = current_settings()
    logger = get_run_logger()
    started = time.monotonic()

    lock = await acquire_lock(settings)
    if lock is None:
        skipped_id = await start_run_log(settings, runtime_flow_run.get_id(), "skipped")
        message = f"skipped: another refresh holds the lock (refresh_runs.run_id={skipped_id})"
        logger.warning(message)
        return Completed(message=message)

    timings: dict[str, Any] = {}  # step seconds; "dbt_nodes": {node: seconds}
    fields: dict[str, Any] = {}
    run_id: int | None = None
    recorded = False  # the run's outcome is in refresh_runs: only the report may follow
    try:
        run_id = await start_run_log(settings, runtime_flow_run.get_id(), "running")
        logger.info("refresh run %s started (database lock held)", run_id)
        await ensure_partitions(settings)

        step = time.monotonic()
        changes = await check_changes(settings, run_id, full)
        _lap(timings, "changes", step)
        fields.update(
            source_max_scraped_at=changes.max_scraped_at,
            source_age_seconds=changes.age_seconds,
            freshness_status=changes.freshness_status,
        )
        if changes.build_reason is None:
            duration = round(time.monotonic() - started, 3)
            fields.update(status="noop", duration_seconds=duration, timings=timings)
            await finish_run_log(settings, run_id, fields)
            recorded = True
            message = f"noop: no new raw rows since the last publish (run {run_id}, {duration} s)"
            logger.info(message)
            await _report_unpublished(settings, run_id, fields)
            return Completed(message=message)

        step = time.monotonic()
        await cleanup_leftovers(settings)
        _lap(timings, "cleanup", step)

        work_dir = Path(tempfile.mkdtemp(prefix=f"pricecat-refresh-{run_id}-"))
        try:
            build_dir = work_dir / "build"
            copy_parse_cache(PARSE_CACHE, build_dir / PARTIAL_PARSE)
            step = time.monotonic()
            node_times, reniced = await build_models(
                settings, str(build_dir), full=full or changes.full_rebuild
            )
            _lap(timings, "build", step)
            # the state now holds what this definition computes
            await record_state_definition(settings, changes.definition_hash)
            timings.update(node_times)
            copy_parse_cache(build_dir / PARTIAL_PARSE, PARSE_CACHE)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

        step = time.monotonic()
        old_schema = await publish(settings, f"{_stamp()}_{run_id}")
        _lap(timings, "publish", step)
        if old_schema:  # dropped by a later run's cleanup, after replicas are done with it
            logger.info("kept %s for replicas still reading it", old_schema)

        step = time.monotonic()
        await vacuum_state(settings)
        _lap(timings, "vacuum", step)

        generation = await published_generation(settings)
        rows = await count_mart_rows(settings)
        duration = round(time.monotonic() - started, 3)
        fields.update(
            status="published", duration_seconds=duration, timings=timings, mart_rows=rows,
            slug_rows=rows.get("catalog_slug_summary"),
            slug_seller_rows=rows.get("catalog_slug_seller_summary"), generation=generation,
        )
        await finish_run_log(settings, run_id, fields)
        recorded = True
        logger.info(
            "refresh run %s published in %.1f s (%s): %s", run_id, duration,
            changes.build_reason, ", ".join(f"{k} {v} rows" for k, v in rows.items()),
        )
        quarantined = rows.get(QUARANTINE, 0)
        (logger.warning if quarantined else logger.info)(
            "%s raw rows quarantined (%s.%s)", quarantined, PUBLISHED_SCHEMA, QUARANTINE
        )
        await create_run_artifact(
            run_id, {**fields, "build_reason": changes.build_reason}, generation, rows
        )
        return {"run_id": run_id, "status": "published", "duration_seconds": duration,
                "timings": timings, "mart_rows": rows, "generation": generation,
                "build_backends_reniced": reniced, "build_reason": changes.build_reason,
                "freshness_status": fields.get("freshness_status")}
    except BaseException as exc:
        if run_id is not None and not recorded:
            interrupted = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
            status = "aborted" if interrupted else "failed"
            fields.update(
                status=status, duration_seconds=round(time.monotonic() - started, 3),
                timings=timings, error=str(exc)[:4000] or type(exc).__name__,
            )
            try:
                await finish_run_log.fn(settings, run_id, fields)
            except Exception as log_exc:
                logger.error("could not record the failure in refresh_runs: %s", log_exc)
            logger.error(
                "refresh run %s %s; %s.* and the data generation are unchanged: %s",
                run_id, status, PUBLISHED_SCHEMA, exc,
            )
            if not interrupted:  # a cancelled run stops at once
                await _report_unpublished(settings, run_id, fields)
        raise
    finally:
        await release_lock(lock)
