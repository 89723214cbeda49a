"""The build step: `dbt build` into `catalog_build` as a subprocess whose output streams into
the run log, with dbt's partial-parse cache kept warm between runs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from prefect import get_run_logger, task

from flows.db import connect
from flows.publish import drop_schema
from flows.retry import (
    RETRY_DELAYS,
    TASK_OPTIONS,
    TRANSIENT_DBT_MARKERS,
    DbtBuildFailed,
    TransientError,
)
from pricecat.config import BUILD_SCHEMA, Settings
from pricecat.dbt import PROJECT_DIR, dbt_command, dbt_env
from pricecat.dbt_server import ForkedDbt, ServerUnavailable, socket_path
from pricecat.priority import BUILD_APPLICATION_NAME, BackendRenicer, refresh_nice

#: dbt prefixes each console line with its own clock; the run log already has one.
DBT_TIMESTAMP = re.compile(r"^\d\d:\d\d:\d\d(  |$)")

#: dbt appends a short hash to generic test ids (test.pricecat.unique_x_slug.8c1e4f2a1b).
TEST_HASH_SUFFIX = re.compile(r"\.[0-9a-f]{10}$")


log = logging.getLogger(__name__)

# --- parse cache ---------------------------------------------------------------------------------


#: dbt's parse cache, shared between runs: each run has its own --target-path, so without this
#: every dbt invocation re-parses the project from scratch (~5 s). dbt itself rejects a cache made
#: for another database, schema or project version, so sharing it is safe.
PARTIAL_PARSE = "partial_parse.msgpack"
PARSE_CACHE = PROJECT_DIR / "target" / "refresh" / PARTIAL_PARSE


def copy_parse_cache(src: Path, dest: Path) -> None:
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


async def run_dbt_logged(
    settings: Settings,
    args: list[str],
    *,
    target_path: str,
    prefix: str,
    schema: str = BUILD_SCHEMA,
) -> tuple[int, list[str]]:
    """Run dbt, streaming each output line into the run log: in a child of the warm fork server
    named by DBT_FORK_SERVER (pricecat/dbt_server.py) when one answers, else as a subprocess.
    Either way a cancelled or timed-out run kills dbt before it returns."""
    logger = get_run_logger()
    cmd = dbt_command(
        [*args, "--no-use-colors", "--log-path", target_path], target_path=target_path
    )
    tail: deque[str] = deque(maxlen=200)
    env = dbt_env(settings, schema)
    env["PRICECAT_DBT_APPLICATION_NAME"] = BUILD_APPLICATION_NAME
    proc: ForkedDbt | asyncio.subprocess.Process | None = None
    server = socket_path(settings)
    if server:
        try:
            proc = await ForkedDbt.start(server, cmd[1:], env, str(PROJECT_DIR))
            logger.info("%s | dbt runs warm: pid %s, forked by %s", prefix, proc.pid, server)
        except ServerUnavailable as exc:
            logger.warning("%s | %s; running dbt as a subprocess", prefix, exc)
    if proc is None:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            env=env,
            cwd=PROJECT_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=1 << 22,
        )
    try:
        async for raw in _output(proc):
            line = DBT_TIMESTAMP.sub("", raw.decode(errors="replace").rstrip())
            if line.strip():
                tail.append(line)
                logger.info("%s | %s", prefix, line)
        rc = await proc.wait()
    except ConnectionError as exc:  # the fork server died mid-run (and its child with it)
        raise TransientError(str(exc)) from exc
    finally:
        if proc.returncode is None:  # cancelled or timed out: do not leave dbt running
            if isinstance(proc, ForkedDbt):
                await proc.kill()
            else:
                proc.kill()
                await proc.wait()
    return rc, list(tail)


async def _output(proc: ForkedDbt | asyncio.subprocess.Process) -> AsyncIterator[bytes]:
    if isinstance(proc, ForkedDbt):
        async for raw in proc.lines():
            yield raw
        return
    assert proc.stdout is not None
    async for raw in proc.stdout:
        yield raw


def describe_failures(run_results: dict[str, Any]) -> list[str]:
    """Human-readable names of the failing nodes in a dbt run_results.json."""
    failures: list[str] = []
    for r in run_results.get("results", []):
        status = r.get("status")
        if status not in ("error", "fail", "runtime error"):
            continue
        kind, _, name = node_name(str(r.get("unique_id", "?"))).partition(".")
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


def node_name(unique_id: str) -> str:
    """A dbt node's short name: `model.int_seller_offers_merged`, `test.unique_x_slug` (package
    and a generic test's hash dropped)."""
    kind, _, rest = unique_id.partition(".")
    name = rest.split(".", 1)[1] if "." in rest else rest
    if kind == "test":
        name = TEST_HASH_SUFFIX.sub("", name)
    return f"{kind}.{name}"


def per_node_seconds(run_results: dict[str, Any]) -> dict[str, float]:
    """Every dbt node's execution time (including its hooks), slowest first (jsonb keeps no
    order: refresh_runs.timings["dbt_nodes"] lists them by name), so a node whose time grows
    with the history shows."""
    times = {
        node_name(str(r.get("unique_id", "?"))): round(float(r.get("execution_time") or 0.0), 3)
        for r in run_results.get("results", [])
    }
    return dict(sorted(times.items(), key=lambda item: -item[1]))


def build_args(*, full: bool) -> list[str]:
    """`dbt build` without the unit tests (they check the SQL, not the data) and without the
    `seed_check` tests (they check the committed seed CSVs against themselves and the
    availability macros: nothing a refresh can change), nor the seed only they read
    (availability_corpus, tagged `seed_check` too); the test suite and CI run all of them
    (tests/conftest.py's plain `dbt build`). `--full-refresh` rebuilds the incremental state from
    scratch."""
    args = ["build", "--exclude", "resource_type:unit_test", "tag:seed_check"]
    return [*args, "--full-refresh"] if full else args


@task(name="dbt-build", retries=2, retry_delay_seconds=RETRY_DELAYS, **TASK_OPTIONS)
async def build_models(
    settings: Settings, target_path: str, *, full: bool = False
) -> tuple[dict[str, Any], int]:
    """Drop + create `catalog_build` and `dbt build` into it.

    Returns dbt's node execution seconds summed per resource type (`dbt_models`, `dbt_tests`,
    `dbt_unit_tests`, `dbt_seeds`; threads overlap, so the sum can exceed the wall time) and per
    node (`dbt_nodes`: {"model.x": seconds, ...}, slowest first), and how many of the build's
    Postgres backends ran reniced (pricecat/priority.py).
    """
    logger = get_run_logger()
    results_file = Path(target_path) / "run_results.json"
    results_file.unlink(missing_ok=True)
    conn = await connect(settings)
    try:
        await drop_schema(conn, BUILD_SCHEMA)
        await conn.execute(f"create schema {BUILD_SCHEMA}")
        # the same connection then watches the build: its Postgres backends yield the CPU to
        # the API's queries (pricecat/priority.py)
        async with BackendRenicer(conn, refresh_nice()) as renicer:
            rc, tail = await run_dbt_logged(
                settings, build_args(full=full), target_path=target_path, prefix="build"
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
        per_node = per_node_seconds(run_results)
        logger.info(
            "slowest dbt nodes: %s",
            ", ".join(f"{name} {seconds:.2f} s" for name, seconds in list(per_node.items())[:8]),
        )
        return {**node_seconds(run_results), "dbt_nodes": per_node}, len(renicer.reniced)

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



# --- state upkeep --------------------------------------------------------------------------------

#: The incremental state tables: every run deletes and re-inserts the rows of the offers it
#: touched (nearly all of them after a scrape cycle) and the ledger's oldest ids.
STATE_TABLES = (
    "catalog_state.int_seller_offers_merged",
    "catalog_state.int_seller_prices_merged",
    "catalog_state.int_deal_events_merged",
    "catalog_state.int_availability_unmatched_merged",
    "catalog_state.int_quarantined_snapshots_merged",
    "catalog_state.merged_snapshot_ids",
)


@task(name="vacuum-state", **TASK_OPTIONS)
async def vacuum_state(settings: Settings) -> bool:
    """VACUUM the incremental state after a publish, so the next run's delete+insert reuses the
    space of the rows this one replaced. Without it (autovacuum off, as on this project's
    servers, or not keeping up) every run leaves a state's worth of dead rows behind and each
    later run reads more pages: the refresh would slow down with the number of runs. Runs after
    the publish (not on the path to fresh data); a failure only logs a warning."""
    logger = get_run_logger()
    try:
        conn = await connect(settings)
        try:
            present = await conn.fetch(
                "select t from unnest($1::text[]) as t where to_regclass(t) is not null",
                list(STATE_TABLES),
            )
            if present:
                await conn.execute(f"vacuum {', '.join(r['t'] for r in present)}")
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError) as exc:
        logger.warning("vacuum of the incremental state failed (the next run retries): %s", exc)
        return False
    return True
