"""`pricecat schedule`: serve the `refresh-catalog` deployment every minute (UTC).

Every minute, so data shows within about a minute of a scrape: a run first checks, in one query,
whether any raw row is new since the last publish and otherwise ends as a no-op in about a second
(flows/changes.py); the 15-minute refresh the seed plan asks for is a subset. A burst of scrape
cycles gives one run, not a queue: the next minute's run merges everything that arrived.
The schedule lives here, in the repo: cron `* * * * *` in UTC, and a deployment-wide
concurrency limit of 1 with collision strategy CANCEL_NEW, so a run that would overlap a running
one is cancelled by Prefect before it starts. The flow's Postgres advisory lock is the second
guard (it also covers `pricecat refresh` started by hand while the scheduler runs).

A scheduled `serve()` needs a real Prefect server (`prefect server start`, PREFECT_API_URL);
Prefect's ephemeral mode refuses to schedule.

`pricecat schedule --pool NAME` instead registers the same deployment (schedule, concurrency
limit) with a work pool and exits: any process worker polling that pool runs it (`prefect worker
start --pool NAME --type process`, on this host or another one; scripts/cluster.sh does this).
The worker imports `flows.refresh` by module path, so a worker host needs this repository
installed (`bash scripts/setup.sh`) and DATABASE_URL pointing at the primary in its environment;
no code is uploaded anywhere and no database URL is stored in Prefect.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from prefect.settings import get_current_settings
from prefect.types.entrypoint import EntrypointType

from flows.cli import configure_cli_logging
from flows.refresh import refresh_catalog
from pricecat.config import Settings
from pricecat.dbt_server import server_for_runs
from pricecat.priority import lower_process_priority, refresh_nice

DEPLOYMENT_NAME = "refresh-catalog-every-minute"
DEFAULT_CRON = "* * * * *"
TIMEZONE = "UTC"


def build_deployment(cron: str = DEFAULT_CRON) -> RunnerDeployment:
    """The served deployment: cron schedule in UTC, never more than one run at a time."""
    deployment = refresh_catalog.to_deployment(
        name=DEPLOYMENT_NAME,
        schedules=[Cron(cron, timezone=TIMEZONE)],
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        description="Build, test and publish the read models; runs never overlap.",
        tags=["pricecat", "refresh"],
        # runs load `flows.refresh:refresh_catalog` by module path, whatever the working directory
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    assert isinstance(deployment, RunnerDeployment)
    return deployment


def deploy_to_pool(pool: str, cron: str = DEFAULT_CRON) -> str:
    """Register the deployment with work pool ``pool`` (created as a process pool if missing);
    returns the deployment id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments.runner import deploy
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def ensure_pool() -> None:
        async with get_client() as client:
            try:
                await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            except ObjectAlreadyExists:
                pass

    run_coro_as_sync(ensure_pool())
    ids = deploy(build_deployment(cron), work_pool_name=pool, build=False, push=False,
                 print_next_steps_message=False)
    assert isinstance(ids, list)  # called from sync code: deploy() ran to completion
    return str(ids[0])


def serve_schedule(settings: Settings, args: Any = None) -> int:
    """Serve the deployment in the foreground until interrupted (Ctrl-C pauses the schedule)."""
    from prefect import serve

    cron = getattr(args, "cron", None) or DEFAULT_CRON
    if not get_current_settings().api.url:
        print(
            "pricecat schedule: PREFECT_API_URL is not set. Scheduling needs a running Prefect "
            "server:\n  prefect server start   # UI on http://127.0.0.1:4200\n"
            "  export PREFECT_API_URL=http://127.0.0.1:4200/api\n  pricecat schedule",
            file=sys.stderr,
        )
        return 2
    pool = getattr(args, "pool", None)
    if pool:
        deployment_id = deploy_to_pool(pool, cron)
        print(f"pricecat schedule: {DEPLOYMENT_NAME} ({deployment_id}) deployed to work pool "
              f"{pool}; start a worker: prefect worker start --pool {pool} --type process")
        return 0
    # served runs execute in subprocesses that read DATABASE_URL/REDIS_URL from this environment
    os.environ.setdefault("DATABASE_URL", settings.database_url)
    os.environ.setdefault("REDIS_URL", settings.redis_url)
    os.environ.setdefault("CACHE_NAMESPACE", settings.cache_namespace)
    configure_cli_logging()
    lower_process_priority(refresh_nice())  # the runs it starts are batch work too
    # each served run is a fresh subprocess: the warm dbt lives beside this process instead
    with server_for_runs(settings):
        serve(build_deployment(cron))
    return 0
