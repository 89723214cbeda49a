"""The run's report in the Prefect UI: one table artifact (key `pricecat-refresh`) per refresh run
that published, found nothing new (noop) or failed, with its status, build id, step timings and
row counts. Creating it is best effort: a failure is logged as a warning and never fails the run.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import acreate_table_artifact

ARTIFACT_KEY = "pricecat-refresh"
#: The longest the run waits for the Prefect API to take the artifact.
ARTIFACT_TIMEOUT_SECONDS = 10.0
COLUMNS = ("section", "name", "value")
#: The run facts reported, in order, from the fields the run log records (flows/run_log.py).
RUN_FACTS = (
    "status", "duration_seconds", "build_reason", "source_max_scraped_at", "source_age_seconds",
    "freshness_status", "error",
)


def _cell(value: Any) -> Any:
    """A JSON-able cell: timestamps as ISO 8601 text, Decimal as float."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def report_table(
    run_id: int,
    fields: dict[str, Any],
    build_id: int | None,
    rows: dict[str, int],
) -> list[dict[str, Any]]:
    """The artifact's rows: `run` facts (run id, status, build id, ...), one `timing` row per
    step in seconds, one `rows` row per published relation (flows/run_log.py MARTS)."""
    table: list[dict[str, Any]] = [
        {"section": "run", "name": "run_id", "value": run_id},
        {"section": "run", "name": "build_id", "value": build_id},
    ]
    table += [
        {"section": "run", "name": name, "value": _cell(fields[name])}
        for name in RUN_FACTS
        if fields.get(name) is not None
    ]
    table += [
        {"section": "timing", "name": step, "value": seconds}
        for step, seconds in (fields.get("timings") or {}).items()
        if isinstance(seconds, int | float)  # not the per-node times ("dbt_nodes")
    ]
    table += [{"section": "rows", "name": name, "value": n} for name, n in rows.items()]
    return table


async def create_run_artifact(
    run_id: int,
    fields: dict[str, Any],
    build_id: int | None,
    rows: dict[str, int],
    *,
    key: str = ARTIFACT_KEY,
) -> UUID | None:
    """Create the run's table artifact; None (and a warning in the run log) when that fails."""
    logger = get_run_logger()
    status = fields.get("status")
    description = (
        f"refresh run {run_id}: **{status}** in {fields.get('duration_seconds')} s, "
        f"published build {build_id}"
    )
    try:
        table = report_table(run_id, fields, build_id, rows)
        return await asyncio.wait_for(
            acreate_table_artifact(table=table, key=key, description=description),
            timeout=ARTIFACT_TIMEOUT_SECONDS,
        )
    except Exception as exc:  # noqa: BLE001 - the report must never fail the refresh
        logger.warning("could not create the %s artifact of run %s: %r", key, run_id, exc)
        return None
