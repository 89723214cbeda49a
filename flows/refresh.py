"""The `refresh-catalog` Prefect flow: write–audit–publish of the dbt read models.

1. lock     `pg_try_advisory_lock` on a dedicated connection held for the whole run; a second run
            while one is active records status 'skipped' and completes cleanly.
2. run log  a `catalog_ops.refresh_runs` row (status 'running'); leftovers of killed runs
            (`catalog_build`, `catalog_old_*`, rows stuck in 'running') are cleaned up.
3. freshness `dbt source freshness` (a stale source is a warning, never a failure) and the source's
            max(scraped_at) / data age.
4. build    drop + create `catalog_build`, `dbt build` (seeds, models, data + unit tests) into it.
            Any failing node fails the flow, names the node in the log and in refresh_runs.error,
            and leaves `catalog` (and with it the data generation) untouched.
5. publish  one short transaction (lock_timeout, retried): grant the API role, rename `catalog`
            to `catalog_old_<stamp>`, rename `catalog_build` to `catalog`. The old schema is kept
            until a later run's cleanup (step 2 keeps the newest `catalog_old_*`, drops older
            ones): dropping its tables right away would, once replayed on a hot-standby replica,
            cancel the replica's reads still running on them ("conflict with recovery").
6. record   the published build id (`catalog.catalog_build_info.build_id`, the API's data
            generation: the swap itself turns the API caches over, Redis plays no part), rows
            per mart, step timings and status 'published'.

Readers survive the swap: a schema rename takes no table lock and resets every cached plan, and
the API's asyncpg queries run outside explicit transactions, where asyncpg re-prepares a statement
whose relation changed by itself (see docs/OPERATIONS.md).

Transient errors (connection refused, deadlock, serialization failure, lock timeout) retry with
backoff; a failing dbt model or test never retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import flow_run as runtime_flow_run
from prefect.states import Completed
from prefect.tasks import Task

from flows.partitions import ensure_partitions
from pricecat import migrate
from pricecat.config import API_ROLE, BUILD_SCHEMA, OPS_SCHEMA, PUBLISHED_SCHEMA, Settings
from pricecat.dbt import PROJECT_DIR, dbt_command, dbt_env
from pricecat.generation import read_generation
from pricecat.priority import (
    BUILD_APPLICATION_NAME,
    BackendRenicer,
    lower_process_priority,
    refresh_nice,
)

FLOW_NAME = "refresh-catalog"

#: Key of the session-level advisory lock that serializes refreshes of one database (advisory
#: locks are per database). Visible in pg_locks as locktype 'advisory', objid 1_902_210_227.
REFRESH_LOCK_KEY = 1_902_210_227

OLD_SCHEMA_PREFIX = f"{PUBLISHED_SCHEMA}_old_"
#: The marts whose row counts go into the run log (catalog_quarantined_snapshots: raw rows left
#: out of the read models for breaking a row-level rule, see docs/OPERATIONS.md).
QUARANTINE = "catalog_quarantined_snapshots"
MARTS = ("catalog_slug_summary", "catalog_slug_seller_summary", QUARANTINE)

#: The publish transaction gives up (and retries) after waiting this long for a lock.
PUBLISH_LOCK_TIMEOUT = "2s"
#: Dropping the old schema waits at most this long behind readers still on the old tables.
DROP_LOCK_TIMEOUT = "1s"
#: A run that takes longer than this is cancelled (and releases the lock).
FLOW_TIMEOUT_SECONDS = 3600

#: SQLSTATEs worth a retry: serialization failure, deadlock, lock timeout, shutdown/start-up,
#: too many connections, connection failures.
TRANSIENT_SQLSTATES = frozenset(
    {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300",
     "08000", "08001", "08003", "08004", "08006"}
)
#: Phrases in dbt's output that mean the database was unreachable or a transaction lost a race.
TRANSIENT_DBT_MARKERS = (
    "connection refused",
    "could not connect to server",
    "server closed the connection unexpectedly",
    "the database system is starting up",
    "the database system is shutting down",
    "too many clients",
    "deadlock detected",
    "could not serialize access",
)

#: dbt prefixes each console line with its own clock; the run log already has one.
DBT_TIMESTAMP = re.compile(r"^\d\d:\d\d:\d\d(  |$)")

#: dbt appends a short hash to generic test ids (test.pricecat.unique_x_slug.8c1e4f2a1b).
TEST_HASH_SUFFIX = re.compile(r"\.[0-9a-f]{10}$")

log = logging.getLogger(__name__)


class RefreshError(RuntimeError):
    """A refresh step failed."""


class TransientError(RefreshError):
    """A failure worth retrying (the database was unreachable, a lock race was lost)."""


class DbtBuildFailed(RefreshError):
    """dbt reported failing models or tests: never retried, never published."""

    def __init__(self, failures: list[str], detail: str = "") -> None:
        self.failures = failures
        summary = "; ".join(failures) if failures else detail or "dbt build failed"
        super().__init__(f"dbt build failed: {summary}")


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry may cure: connection refused/lost, deadlock, serialization."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, DbtBuildFailed):
        return False
    if isinstance(exc, asyncpg.PostgresError):
        return getattr(exc, "sqlstate", None) in TRANSIENT_SQLSTATES
    if isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError):
        return True
    # ConnectionRefusedError, ConnectionResetError, socket timeouts (asyncpg.connect)
    return isinstance(exc, OSError | TimeoutError)


def _state_exception(state: State[Any]) -> BaseException | None:
    data = state.data
    if isinstance(data, BaseException):
        return data
    inner = getattr(data, "result", None)  # a ResultRecord wrapping the exception
    return inner if isinstance(inner, BaseException) else None


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect retry condition: retry transient database errors only."""
    exc = _state_exception(state)
    return exc is not None and is_transient(exc)


# --- settings ------------------------------------------------------------------------------------

_settings_override: Settings | None = None


@contextmanager
def using_settings(settings: Settings) -> Iterator[None]:
    """Run the flow in this process against `settings` instead of the environment.

    The flow takes no parameters on purpose: a database URL (with its password) would otherwise be
    stored with every flow run in Prefect's database. Served deployments read the environment.
    """
    global _settings_override
    previous, _settings_override = _settings_override, settings
    try:
        yield
    finally:
        _settings_override = previous


def current_settings() -> Settings:
    return _settings_override if _settings_override is not None else Settings.from_env()


async def _connect(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(
        settings.database_url,
        timeout=10,
        server_settings={"application_name": "pricecat-refresh"},
    )


# --- tasks ---------------------------------------------------------------------------------------

TASK_OPTIONS: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "persist_result": False,
    "retry_condition_fn": retry_if_transient,
}
RETRY_DELAYS: list[float] = [2.0, 5.0, 15.0]


@task(name="acquire-lock", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def acquire_lock(settings: Settings) -> asyncpg.Connection | None:
    """A dedicated connection holding the refresh lock, or None when another run holds it."""
    conn = await _connect(settings)
    try:
        got = await conn.fetchval("select pg_try_advisory_lock($1::bigint)", REFRESH_LOCK_KEY)
    except BaseException:
        await conn.close()
        raise
    if not got:
        await conn.close()
        return None
    return conn


async def release_lock(conn: asyncpg.Connection) -> None:
    try:
        await conn.fetchval("select pg_advisory_unlock($1::bigint)", REFRESH_LOCK_KEY)
    except Exception as exc:  # closing the session releases it anyway
        log.warning("could not release the refresh lock explicitly: %s", exc)
    finally:
        await conn.close()


async def _ensure_ops_table(conn: asyncpg.Connection) -> None:
    have = await conn.fetchval(
        """
        select count(*)
        from information_schema.columns
        where table_schema = $1 and table_name = 'refresh_runs'
            and column_name in ('mart_rows', 'generation')
        """,
        OPS_SCHEMA,
    )
    if have != 2:
        await conn.execute(migrate.OPS_DDL)
        if await conn.fetchval("select 1 from pg_roles where rolname = $1", API_ROLE):
            await conn.execute(f"grant usage on schema {OPS_SCHEMA} to {API_ROLE}")
            await conn.execute(f"grant select on {OPS_SCHEMA}.refresh_runs to {API_ROLE}")


@task(name="start-run-log", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def start_run_log(settings: Settings, flow_run_id: str | None, status: str) -> int:
    """Insert this run's refresh_runs row; a 'running' run also marks dead runs as aborted."""
    conn = await _connect(settings)
    try:
        await _ensure_ops_table(conn)
        if status == "running":
            # we hold the lock: any other 'running' row belongs to a killed process
            aborted = await conn.execute(
                f"""
                update {OPS_SCHEMA}.refresh_runs
                set status = 'aborted', finished_at = now(),
                    error = coalesce(error, 'process ended without finishing the run')
                where status = 'running'
                """  # noqa: S608 (constant schema name)
            )
            if aborted != "UPDATE 0":
                get_run_logger().warning("marked leftover 'running' rows as aborted (%s)", aborted)
        run_id: int = await conn.fetchval(
            f"""
            insert into {OPS_SCHEMA}.refresh_runs (flow_run_id, status, finished_at, error)
            values ($1, $2, case when $2 = 'running' then null else now() end, $3)
            returning run_id
            """,  # noqa: S608 (constant schema name)
            flow_run_id,
            status,
            "another refresh holds the lock" if status == "skipped" else None,
        )
        return run_id
    finally:
        await conn.close()


@task(name="cleanup-leftovers", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def cleanup_leftovers(settings: Settings) -> list[str]:
    """Drop `catalog_build` (left by killed runs) and every `catalog_old_*` but the newest (the
    schema the last publish replaced: replicas may still be reading it)."""
    logger = get_run_logger()
    conn = await _connect(settings)
    dropped: list[str] = []
    try:
        names = await conn.fetch(
            """
            select nspname from pg_namespace
            where nspname = $1 or starts_with(nspname, $2)
            order by nspname
            """,
            BUILD_SCHEMA,
            OLD_SCHEMA_PREFIX,
        )
        old = [r for r in names if r["nspname"] != BUILD_SCHEMA]  # oldest first (stamped names)
        if old:
            names = [r for r in names if r is not old[-1]]
        for record in names:
            name: str = record["nspname"]
            try:
                await _drop_schema(conn, name)
                dropped.append(name)
            except asyncpg.LockNotAvailableError:
                logger.warning("schema %s is still in use; a later run drops it", name)
        if dropped:
            logger.info("dropped leftover schemas: %s", ", ".join(dropped))
        return dropped
    finally:
        await conn.close()


async def _drop_schema(conn: asyncpg.Connection, name: str) -> None:
    quoted = await conn.fetchval("select quote_ident($1)", name)
    async with conn.transaction():
        await conn.execute("select set_config('lock_timeout', $1, true)", DROP_LOCK_TIMEOUT)
        await conn.execute(f"drop schema if exists {quoted} cascade")


@dataclass
class Freshness:
    status: str
    max_scraped_at: datetime | None
    age_seconds: float | None


def _worst_freshness(results: list[dict[str, Any]]) -> str:
    order = ["pass", "warn", "error", "runtime error"]
    statuses = [r.get("status", "runtime error") for r in results] or ["unknown"]
    known = [s for s in statuses if s in order]
    if not known:
        return "unknown"
    return str(max(known, key=order.index))


@task(name="source-freshness", retries=2, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def check_freshness(settings: Settings, target_path: str) -> Freshness:
    """`dbt source freshness` plus the source's newest scraped_at; stale data only warns."""
    logger = get_run_logger()
    rc, _tail = await run_dbt_logged(
        settings, ["source", "freshness"], target_path=target_path, prefix="freshness"
    )
    status = "unknown"
    sources = Path(target_path) / "sources.json"
    if sources.exists():
        results = json.loads(sources.read_text()).get("results", [])
        status = _worst_freshness(results)
        for r in results:
            if r.get("status") in ("warn", "error", "runtime error"):
                age = r.get("max_loaded_at_time_ago_in_s")
                age_text = f"{age / 60:.0f} min old" if isinstance(age, int | float) else "age n/a"
                logger.warning(
                    "source freshness %s: %s (%s; warn after 30 min, error after 60 min)",
                    r.get("status"), r.get("unique_id"), age_text,
                )
    elif rc != 0:
        logger.warning("dbt source freshness could not run (exit %s); continuing", rc)

    conn = await _connect(settings)
    try:
        row = await conn.fetchrow(
            """
            select max(scraped_at) as max_scraped_at,
                extract(epoch from now() - max(scraped_at))::float8 as age_seconds
            from public.product_price_snapshots
            """
        )
    finally:
        await conn.close()
    assert row is not None
    fresh = Freshness(status, row["max_scraped_at"], row["age_seconds"])
    age = f"{fresh.age_seconds / 60:.1f} min" if fresh.age_seconds is not None else "n/a (empty)"
    logger.info(
        "source data: newest snapshot %s, age %s, freshness %s",
        fresh.max_scraped_at, age, fresh.status,
    )
    return fresh


async def run_dbt_logged(
    settings: Settings,
    args: list[str],
    *,
    target_path: str,
    prefix: str,
    schema: str = BUILD_SCHEMA,
) -> tuple[int, list[str]]:
    """Run dbt as a subprocess, streaming each output line into the run log."""
    logger = get_run_logger()
    cmd = dbt_command(
        [*args, "--no-use-colors", "--log-path", target_path], target_path=target_path
    )
    tail: deque[str] = deque(maxlen=200)
    env = dbt_env(settings, schema)
    env["PRICECAT_DBT_APPLICATION_NAME"] = BUILD_APPLICATION_NAME
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        env=env,
        cwd=PROJECT_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        limit=1 << 22,
    )
    try:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = DBT_TIMESTAMP.sub("", raw.decode(errors="replace").rstrip())
            if line.strip():
                tail.append(line)
                logger.info("%s | %s", prefix, line)
        rc = await proc.wait()
    finally:
        if proc.returncode is None:  # cancelled or timed out: do not leave dbt running
            proc.kill()
            await proc.wait()
    return rc, list(tail)


def describe_failures(run_results: dict[str, Any]) -> list[str]:
    """Human-readable names of the failing nodes in a dbt run_results.json."""
    failures: list[str] = []
    for r in run_results.get("results", []):
        status = r.get("status")
        if status not in ("error", "fail", "runtime error"):
            continue
        unique_id: str = r.get("unique_id", "?")
        kind, _, rest = unique_id.partition(".")
        name = rest.split(".", 1)[1] if "." in rest else rest  # drop the package name
        if kind == "test":
            name = TEST_HASH_SUFFIX.sub("", name)
        lines = [ln.strip() for ln in (r.get("message") or "").splitlines() if ln.strip()]
        first = " / ".join(lines[:4])[:400]
        failing = r.get("failures")
        count = f", {failing} failing rows" if isinstance(failing, int) and failing else ""
        failures.append(f"{kind.replace('_', ' ')} {name} {status}{count}: {first}".rstrip(": "))
    return failures


def node_seconds(run_results: dict[str, Any]) -> dict[str, float]:
    """dbt node execution time summed per resource type, e.g. {"dbt_models": 41.2, ...}."""
    sums: dict[str, float] = {}
    for r in run_results.get("results", []):
        kind = str(r.get("unique_id", "other")).split(".", 1)[0]
        key = f"dbt_{kind}s"
        sums[key] = round(sums.get(key, 0.0) + float(r.get("execution_time") or 0.0), 3)
    return sums


@task(name="dbt-build", retries=2, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def build_models(settings: Settings, target_path: str) -> tuple[dict[str, float], int]:
    """Drop + create `catalog_build` and `dbt build` into it.

    Returns dbt's node execution seconds summed per resource type (`dbt_models`, `dbt_tests`,
    `dbt_unit_tests`, `dbt_seeds`; threads overlap, so the sum can exceed the wall time) and
    how many of the build's Postgres backends ran reniced (pricecat/priority.py).
    """
    logger = get_run_logger()
    results_file = Path(target_path) / "run_results.json"
    results_file.unlink(missing_ok=True)
    conn = await _connect(settings)
    try:
        await _drop_schema(conn, BUILD_SCHEMA)
        await conn.execute(f"create schema {BUILD_SCHEMA}")
        # the same connection then watches the build: its Postgres backends yield the CPU to
        # the API's queries (pricecat/priority.py)
        async with BackendRenicer(conn, refresh_nice()) as renicer:
            rc, tail = await run_dbt_logged(
                settings, ["build"], target_path=target_path, prefix="build"
            )
    finally:
        await conn.close()
    if renicer.reniced:
        logger.info(
            "build ran at niceness %s in %s Postgres backends", renicer.nice, len(renicer.reniced)
        )
    run_results: dict[str, Any] = (
        json.loads(results_file.read_text()) if results_file.exists() else {}
    )
    nodes = len(run_results.get("results", []))
    if rc == 0:
        logger.info("dbt build passed: %s nodes (models, seeds, tests) in %s", nodes, BUILD_SCHEMA)
        return node_seconds(run_results), len(renicer.reniced)

    failures = describe_failures(run_results)
    text = "\n".join(tail).lower()
    if any(marker in text for marker in TRANSIENT_DBT_MARKERS) and not any(
        " fail" in f for f in failures
    ):
        raise TransientError(f"dbt build hit a transient database error (exit {rc})")
    for failure in failures:
        logger.error("FAILED %s", failure)
    detail = "; ".join(tail[-5:]) if not failures else ""
    raise DbtBuildFailed(failures, detail)


@task(
    name="publish",
    retries=4,
    retry_delay_seconds=[1.0, 2.0, 4.0, 8.0],
    retry_jitter_factor=0.5,
    **TASK_OPTIONS,
)
async def publish(settings: Settings, stamp: str) -> str | None:
    """Swap `catalog_build` in as `catalog` in one short transaction. Returns the old schema."""
    logger = get_run_logger()
    old_name = f"{OLD_SCHEMA_PREFIX}{stamp}"
    conn = await _connect(settings)
    try:
        async with conn.transaction():
            await conn.execute("select set_config('lock_timeout', $1, true)", PUBLISH_LOCK_TIMEOUT)
            exists = await conn.fetch(
                "select nspname from pg_namespace where nspname = any($1::text[])",
                [PUBLISHED_SCHEMA, BUILD_SCHEMA],
            )
            present = {r["nspname"] for r in exists}
            if BUILD_SCHEMA not in present:
                raise RefreshError(f"schema {BUILD_SCHEMA} vanished before publish")
            has_role = await conn.fetchval("select 1 from pg_roles where rolname = $1", API_ROLE)
            if has_role:
                await conn.execute(f"grant usage on schema {BUILD_SCHEMA} to {API_ROLE}")
                await conn.execute(
                    f"grant select on all tables in schema {BUILD_SCHEMA} to {API_ROLE}"
                )
            else:
                logger.warning("role %s is missing (run `pricecat migrate`)", API_ROLE)
            if PUBLISHED_SCHEMA in present:
                await conn.execute(f"alter schema {PUBLISHED_SCHEMA} rename to {old_name}")
            await conn.execute(f"alter schema {BUILD_SCHEMA} rename to {PUBLISHED_SCHEMA}")
    finally:
        await conn.close()
    logger.info("published: %s is now %s", BUILD_SCHEMA, PUBLISHED_SCHEMA)
    return old_name if PUBLISHED_SCHEMA in present else None


@task(name="drop-old-schema", **TASK_OPTIONS)
async def drop_old_schema(settings: Settings, name: str) -> bool:
    """Drop the schema that was just replaced; if readers still hold it, leave it for next run."""
    logger = get_run_logger()
    try:
        conn = await _connect(settings)
    except Exception as exc:
        logger.warning("could not drop %s now (%s); the next run drops it", name, exc)
        return False
    try:
        await _drop_schema(conn, name)
        logger.info("dropped %s", name)
        return True
    except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError) as exc:
        logger.warning("could not drop %s now (%s); the next run drops it", name, exc)
        return False
    finally:
        await conn.close()


@task(name="read-generation", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def published_generation(settings: Settings) -> int:
    """The build id now published: the data generation the API keys its caches by."""
    conn = await _connect(settings)
    try:
        generation = await read_generation(conn)
    finally:
        await conn.close()
    get_run_logger().info("published build (data generation) %s", generation)
    return generation


@task(name="count-mart-rows", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def count_mart_rows(settings: Settings) -> dict[str, int]:
    conn = await _connect(settings)
    try:
        counts: dict[str, int] = {}
        for mart in MARTS:
            exists = await conn.fetchval(
                "select to_regclass($1) is not null", f"{PUBLISHED_SCHEMA}.{mart}"
            )
            if exists:
                counts[mart] = await conn.fetchval(
                    f"select count(*) from {PUBLISHED_SCHEMA}.{mart}"  # noqa: S608 (constant)
                )
        return counts
    finally:
        await conn.close()


@task(name="finish-run-log", retries=3, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def finish_run_log(settings: Settings, run_id: int, fields: dict[str, Any]) -> None:
    """Update this run's refresh_runs row (status, timings, rows, error...)."""
    allowed = {
        "status", "duration_seconds", "source_max_scraped_at", "source_age_seconds",
        "freshness_status", "slug_rows", "slug_seller_rows", "timings", "error", "mart_rows",
        "generation",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown refresh_runs columns: {sorted(unknown)}")
    names = sorted(fields)
    values = [
        json.dumps(fields[n]) if n in ("timings", "mart_rows") else fields[n] for n in names
    ]
    assignments = ", ".join(
        f"{n} = ${i + 2}" + ("::jsonb" if n in ("timings", "mart_rows") else "")
        for i, n in enumerate(names)
    )
    conn = await _connect(settings)
    try:
        await conn.execute(
            f"update {OPS_SCHEMA}.refresh_runs set finished_at = now(), {assignments} "  # noqa: S608
            "where run_id = $1",
            run_id,
            *values,
        )
    finally:
        await conn.close()


# --- flow ----------------------------------------------------------------------------------------


#: dbt's parse cache, shared between runs: each run has its own --target-path, so without this
#: every dbt invocation re-parses the project from scratch (~5 s). dbt itself rejects a cache made
#: for another database, schema or project version, so sharing it is safe.
PARTIAL_PARSE = "partial_parse.msgpack"
PARSE_CACHE = PROJECT_DIR / "target" / "refresh" / PARTIAL_PARSE


def _copy_parse_cache(src: Path, dest: Path) -> None:
    """Copy dbt's partial-parse file (atomically; a failure only costs a full parse)."""
    try:
        if not src.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        log.debug("partial-parse cache not copied: %s", exc)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


@flow(
    name=FLOW_NAME,
    description="Build, test and publish the dbt read models (write-audit-publish).",
    timeout_seconds=FLOW_TIMEOUT_SECONDS,
    persist_result=False,
)
async def refresh_catalog() -> dict[str, Any] | State[Any]:
    settings = current_settings()
    logger = get_run_logger()
    flow_run_id = runtime_flow_run.get_id()
    started = time.monotonic()

    lock = await acquire_lock(settings)
    if lock is None:
        skipped_id = await start_run_log(settings, flow_run_id, "skipped")
        message = f"skipped: another refresh holds the lock (refresh_runs.run_id={skipped_id})"
        logger.warning(message)
        return Completed(message=message)

    timings: dict[str, float] = {}
    fields: dict[str, Any] = {}
    run_id: int | None = None
    try:
        run_id = await start_run_log(settings, flow_run_id, "running")
        logger.info("refresh run %s started (database lock held)", run_id)
        await ensure_partitions(settings)

        step = time.monotonic()
        await cleanup_leftovers(settings)
        timings["cleanup"] = round(time.monotonic() - step, 3)

        work_dir = Path(tempfile.mkdtemp(prefix=f"pricecat-refresh-{run_id}-"))
        fresh_dir, build_dir = work_dir / "freshness", work_dir / "build"
        try:
            _copy_parse_cache(PARSE_CACHE, fresh_dir / PARTIAL_PARSE)
            step = time.monotonic()
            fresh = await check_freshness(settings, str(fresh_dir))
            timings["freshness"] = round(time.monotonic() - step, 3)
            fields.update(
                source_max_scraped_at=fresh.max_scraped_at,
                source_age_seconds=fresh.age_seconds,
                freshness_status=fresh.status,
            )

            _copy_parse_cache(fresh_dir / PARTIAL_PARSE, build_dir / PARTIAL_PARSE)
            _copy_parse_cache(fresh_dir / PARTIAL_PARSE, PARSE_CACHE)
            step = time.monotonic()
            node_times, reniced = await build_models(settings, str(build_dir))
            timings["build"] = round(time.monotonic() - step, 3)
            timings.update(node_times)
            _copy_parse_cache(build_dir / PARTIAL_PARSE, PARSE_CACHE)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

        step = time.monotonic()
        old_schema = await publish(settings, f"{_stamp()}_{run_id}")
        timings["publish"] = round(time.monotonic() - step, 3)

        if old_schema:  # dropped by a later run's cleanup, after replicas are done with it
            logger.info("kept %s for replicas still reading it", old_schema)

        generation = await published_generation(settings)

        rows = await count_mart_rows(settings)
        duration = round(time.monotonic() - started, 3)
        fields.update(
            status="published",
            duration_seconds=duration,
            timings=timings,
            mart_rows=rows,
            slug_rows=rows.get("catalog_slug_summary"),
            slug_seller_rows=rows.get("catalog_slug_seller_summary"),
            generation=generation,
        )
        await finish_run_log(settings, run_id, fields)
        summary = {"run_id": run_id, "status": "published", "duration_seconds": duration,
                   "timings": timings, "mart_rows": rows, "generation": generation,
                   "build_backends_reniced": reniced,
                   "freshness_status": fields.get("freshness_status")}
        logger.info(
            "refresh run %s published in %.1f s: %s",
            run_id, duration, ", ".join(f"{k} {v} rows" for k, v in rows.items()),
        )
        quarantined = rows.get(QUARANTINE, 0)
        (logger.warning if quarantined else logger.info)(
            "%s raw rows quarantined (%s.%s)", quarantined, PUBLISHED_SCHEMA, QUARANTINE
        )
        return summary
    except BaseException as exc:
        if run_id is not None:
            interrupted = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
            status = "aborted" if interrupted else "failed"
            fields.update(
                status=status,
                duration_seconds=round(time.monotonic() - started, 3),
                timings=timings,
                error=str(exc)[:4000] or type(exc).__name__,
            )
            try:
                await finish_run_log.fn(settings, run_id, fields)
            except Exception as log_exc:
                logger.error("could not record the failure in refresh_runs: %s", log_exc)
            logger.error(
                "refresh run %s %s; %s.%s and the data generation are unchanged: %s",
                run_id, status, PUBLISHED_SCHEMA, "*", exc,
            )
        raise
    finally:
        await release_lock(lock)


# --- CLI ---------------------------------------------------------------------------------------


class _RunLogFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL [task-run name] message`: Prefect's run names, no logger noise."""

    def format(self, record: logging.LogRecord) -> str:
        who = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None)
        stamp = self.formatTime(record, "%H:%M:%S")
        text = f"{stamp} {record.levelname:<7} " + (f"[{who}] " if who else "")
        text += record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_cli_logging() -> None:
    """Readable foreground progress: one line per step or dbt line, HTTP chatter hidden."""
    for noisy in ("httpx", "httpcore", "prefect.events", "prefect._internal"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:  # the CLI's own console handler only
            handler.setFormatter(_RunLogFormatter())


def _describe_result(state: State[Any]) -> str:
    try:
        summary = state.result(raise_on_failure=False)
    except Exception:  # the result is only a nicety here
        return "completed"
    if not isinstance(summary, dict):
        return "completed"
    rows = ", ".join(f"{k} {v}" for k, v in (summary.get("mart_rows") or {}).items())
    return (
        f"published (run {summary.get('run_id')}, {summary.get('duration_seconds')} s; {rows};"
        f" generation {summary.get('generation')})"
    )


def run_refresh(settings: Settings) -> State[Any]:
    """Run the flow once in this process (ephemeral Prefect or PREFECT_API_URL); its final state."""
    with using_settings(settings):
        state: State[Any] = asyncio.run(refresh_catalog(return_state=True))  # type: ignore[arg-type]
    return state


def run_refresh_cli(settings: Settings, args: Any = None) -> int:
    """`pricecat refresh`: 0 when published or skipped, 1 when the run failed."""
    configure_cli_logging()
    # batch work: the API wins the CPU; Prefect's temporary server and dbt inherit the niceness
    lower_process_priority(refresh_nice())
    state = run_refresh(settings)
    if state.is_completed():
        print(f"pricecat refresh: {state.message or _describe_result(state)}", file=sys.stderr)
        return 0
    print(f"pricecat refresh: FAILED ({state.type.value}): {state.message}", file=sys.stderr)
    return 1
