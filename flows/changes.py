"""The check that starts every run, in one short database round: the source's data age (instead
of a separate `dbt source freshness` process) and whether anything is new since the last publish.

A run builds when any of these holds: `--full` was asked; the definition of the incremental
state changed since it was built (a full rebuild, below); nothing is published yet or the
incremental state (or its snapshot ledger) is missing; the last run that did work did not publish
(a failed build may have advanced the state without publishing it), or no run ever did;
or the raw table holds an id
above the ledger's lower bound that the ledger does not hold yet: the same test
models/intermediate/int_price_snapshots_arrived.sql applies (docs/DESIGN.md, "Incremental
state"). Otherwise the run is a no-op: no dbt, no publish, the build id stays.

State definition: the incremental state keeps what earlier runs computed with the SQL, macros
and seeds of their time (availability rules, quarantine rules, the merge itself). A hash of those
files (STATE_DEFINITION_PATHS, contents and sorted paths) is stored with the state after each
successful build (`catalog_state.state_definition`); a run that finds another hash, or none while
state exists, rebuilds the state from the whole history (`--full-refresh`) and logs
"state definition changed: full rebuild".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from prefect import get_run_logger, task

from flows.db import connect
from flows.retry import RETRY_DELAYS, TASK_OPTIONS
from pricecat.config import OPS_SCHEMA, PUBLISHED_SCHEMA, Settings
from pricecat.dbt import PROJECT_DIR

#: the schema of the incremental state (the dbt var `state_schema`'s default)
STATE_SCHEMA = "catalog_state"
LEDGER = f"{STATE_SCHEMA}.merged_snapshot_ids"
STATE = f"{STATE_SCHEMA}.int_seller_offers_merged"
SOURCES_YML = PROJECT_DIR / "models" / "staging" / "scraper" / "_scraper__sources.yml"
#: the hash of the files that define the incremental state, stored with it
STATE_DEFINITION = f"{STATE_SCHEMA}.state_definition"
#: what defines the state: the seeds (availability rules), the macros (classification,
#: quarantine, ledger), staging and the state models, the project's vars (the overlap)
STATE_DEFINITION_PATHS = (
    "dbt_project.yml", "seeds", "macros", "models/staging", "models/intermediate",
)
FULL_REBUILD_REASON = "state definition changed: full rebuild"
PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@cache
def snapshot_id_overlap() -> int:
    """The dbt var `snapshot_id_overlap` (dbt_project.yml): one declaration for dbt and the flow."""
    project = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())
    return int(project["vars"]["snapshot_id_overlap"])


@cache
def freshness_limits() -> tuple[float, float]:
    """(warn, error) data ages in seconds from the source's `freshness` config."""
    sources = yaml.safe_load(SOURCES_YML.read_text())["sources"][0]
    table = sources["tables"][0]
    freshness: dict[str, Any] = table["config"]["freshness"]

    def seconds(limit: dict[str, Any]) -> float:
        return float(limit["count"]) * PERIOD_SECONDS[limit["period"]]

    return seconds(freshness["warn_after"]), seconds(freshness["error_after"])


def freshness_status(age_seconds: float | None) -> str:
    if age_seconds is None:
        return "unknown"
    warn, error = freshness_limits()
    return "error" if age_seconds > error else "warn" if age_seconds > warn else "pass"


def state_definition_hash(project_dir: Path = PROJECT_DIR) -> str:
    """sha256 over the sorted relative paths and contents of every file under
    STATE_DEFINITION_PATHS (a missing path counts as empty)."""
    digest = hashlib.sha256()
    files: list[Path] = []
    for name in STATE_DEFINITION_PATHS:
        path = project_dir / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for path in sorted(files, key=lambda p: p.relative_to(project_dir).as_posix()):
        digest.update(path.relative_to(project_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass
class Changes:
    build_reason: str | None  # None: nothing to do
    max_scraped_at: datetime | None
    age_seconds: float | None
    freshness_status: str
    #: the state must be rebuilt from the whole history (dbt --full-refresh)
    full_rebuild: bool = False
    #: the hash of the state's definition files this run checked (stored after its build)
    definition_hash: str = ""


CHECK_SQL = f"""
select
    (select max(scraped_at) from public.product_price_snapshots) as max_scraped_at,
    extract(epoch from now() - (select max(scraped_at) from public.product_price_snapshots))::float8
        as age_seconds,
    to_regclass('{PUBLISHED_SCHEMA}.catalog_build_info') is not null as is_published,
    to_regclass('{LEDGER}') is not null and to_regclass('{STATE}') is not null as has_state,
    to_regclass('{STATE_DEFINITION}') is not null as has_definition,
    (
        select status from {OPS_SCHEMA}.refresh_runs
        where status in ('published', 'failed', 'aborted') and run_id <> $1
        order by run_id desc limit 1
    ) as last_work_status
"""  # noqa: S608 (constant schema names)

NEW_ROWS_SQL = f"""
select exists (
    select from public.product_price_snapshots as raw
    where
        raw.id > (select coalesce(max(ledger.snapshot_id), 0) - $1 from {LEDGER} as ledger)
        and not exists (select from {LEDGER} as ledger where ledger.snapshot_id = raw.id)
)
"""  # noqa: S608 (constant schema names)


STORED_DEFINITION_SQL = f"select definition_hash from {STATE_DEFINITION}"  # noqa: S608

CREATE_DEFINITION_SQL = f"""
create table if not exists {STATE_DEFINITION} (
    one_row boolean primary key default true check (one_row),
    definition_hash text not null,
    recorded_at timestamptz not null default now()
)
"""

RECORD_DEFINITION_SQL = f"""
insert into {STATE_DEFINITION} (definition_hash) values ($1)
on conflict (one_row) do update set definition_hash = excluded.definition_hash, recorded_at = now()
"""  # noqa: S608 (constant schema names)


@task(name="check-changes", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def check_changes(settings: Settings, run_id: int, full: bool) -> Changes:
    """Data age and freshness status, and why this run must build (None: it must not)."""
    logger = get_run_logger()
    definition = state_definition_hash()
    stored: str | None = None
    conn = await connect(settings)
    try:
        row = await conn.fetchrow(CHECK_SQL, run_id)
        assert row is not None
        if row["has_definition"]:
            stored = await conn.fetchval(STORED_DEFINITION_SQL)
        reason: str | None = None
        rebuild = full
        if full:
            reason = "full rebuild asked"
        elif row["has_state"] and stored != definition:
            reason, rebuild = FULL_REBUILD_REASON, True
            logger.warning(
                "%s (stored state definition %s, project %s)",
                FULL_REBUILD_REASON, (stored or "none")[:12], definition[:12],
            )
        elif not row["is_published"]:
            reason = "nothing published yet"
        elif not row["has_state"]:
            reason = "no incremental state yet"
        elif row["last_work_status"] != "published":
            # a failed or killed build may have advanced the state without publishing it; no
            # run at all: `catalog` was built outside the flow
            reason = f"the last run that built did not publish ({row['last_work_status']})"
        elif await conn.fetchval(NEW_ROWS_SQL, snapshot_id_overlap()):
            reason = "new raw rows"
    finally:
        await conn.close()
    age = row["age_seconds"]
    changes = Changes(
        reason, row["max_scraped_at"], age, freshness_status(age), rebuild, definition
    )
    age_text = f"{age / 60:.1f} min" if age is not None else "n/a (empty)"
    (logger.warning if changes.freshness_status in ("warn", "error") else logger.info)(
        "source data: newest snapshot %s, age %s, freshness %s",
        changes.max_scraped_at, age_text, changes.freshness_status,
    )
    logger.info("build: %s", reason or "no: nothing new since the last publish")
    return changes


@task(name="record-state-definition", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def record_state_definition(settings: Settings, definition_hash: str) -> None:
    """Store the hash of the definition the state was just built with (after a build passed)."""
    conn = await connect(settings)
    try:
        async with conn.transaction():
            await conn.execute(CREATE_DEFINITION_SQL)
            await conn.execute(RECORD_DEFINITION_SQL, definition_hash)
    finally:
        await conn.close()
