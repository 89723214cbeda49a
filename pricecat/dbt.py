"""Run dbt as a subprocess against DATABASE_URL (dbt-postgres 1.11 slows down in-process over
repeated invocations, dbt-adapters #2136, so a long-lived scheduler never calls dbtRunner)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pricecat.config import Settings, parse_database_url

PROJECT_DIR = Path(os.environ.get("PRICECAT_PROJECT_DIR") or Path(__file__).resolve().parent.parent)
PROFILES_DIR = PROJECT_DIR / "profiles"


def dbt_env(settings: Settings, schema: str) -> dict[str, str]:
    pg = parse_database_url(settings.database_url)
    env = dict(os.environ)
    env.update(
        PRICECAT_PGHOST=pg.host,
        PRICECAT_PGPORT=str(pg.port),
        PRICECAT_PGUSER=pg.user,
        PRICECAT_PGPASSWORD=pg.password,
        PRICECAT_PGDATABASE=pg.dbname,
        PRICECAT_DBT_SCHEMA=schema,
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DO_NOT_TRACK="1",
        # JIT compiles the staging view's long expressions for seconds per statement, and the
        # incremental models' plans cost enough to trigger it even when they read a few rows
        # (docs/BENCHMARKS.md, "Incremental refresh"): dbt's sessions run without it
        # The marts sort every offer's price steps and points (several sorts per query):
        # with the server's default work_mem (4MB) they spill to disk, more so as the history
        # grows. The state models ask for more themselves (`set local work_mem`).
        PGOPTIONS=f"{os.environ.get('PGOPTIONS', '')} -c jit=off -c work_mem=128MB".strip(),
    )
    return env


def dbt_executable() -> str:
    local = Path(sys.executable).parent / "dbt"
    if local.exists():
        return str(local)
    found = shutil.which("dbt")
    if not found:
        raise RuntimeError("dbt is not installed in this environment")
    return found


def dbt_command(args: list[str], *, target_path: str | None = None) -> list[str]:
    cmd = [
        dbt_executable(),
        *args,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROFILES_DIR),
    ]
    if target_path:
        cmd += ["--target-path", target_path]
    return cmd


def run_dbt(
    settings: Settings,
    args: list[str],
    *,
    schema: str,
    target_path: str | None = None,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `dbt <args>` with the profile pointed at DATABASE_URL and `schema`."""
    return subprocess.run(
        dbt_command(args, target_path=target_path),
        env=dbt_env(settings, schema),
        cwd=PROJECT_DIR,
        text=True,
        capture_output=capture,
        check=False,
    )
