"""`pricecat refresh` killed with SIGKILL mid-build, and the scraper writing during a refresh.

Runs on its own throwaway database (the fixture rows) with its own Redis, so the swaps never touch
the session's fixture database. The refresh runs as a real subprocess in its own process group;
the kill is SIGKILL to the whole group (the refresh, its dbt child and Prefect's temporary
server), the way an OOM-killed container or `systemctl kill -s KILL` ends a job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pricecat.config import Settings
from tests import helpers
from tests.reliability.conftest import api_env
from tests.reliability.procs import (
    PRICECAT,
    REPO_ROOT,
    ApiServer,
    RedisServer,
    descendants,
    wait_until,
)

REFRESH_TIMEOUT = 600


class RefreshEnv:
    def __init__(self, settings: Settings, redis: RedisServer, prefect_home: Path) -> None:
        self.settings = settings
        self.redis = redis
        self.env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": redis.url,
            "CACHE_NAMESPACE": settings.cache_namespace,
            # a private Prefect home: no shared SQLite with other test runs on this machine
            "PREFECT_HOME": str(prefect_home),
        }
        self.env.pop("PYTEST_CURRENT_TEST", None)
        self.logs: list[str] = []

    def start(self) -> subprocess.Popen[str]:
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - read back in finish()
            "w+", prefix="pricecat-refresh-", suffix=".log", delete=False
        )
        proc = subprocess.Popen(
            [PRICECAT, "refresh"], env=self.env, cwd=REPO_ROOT, stdout=log,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        proc.log_path = log.name  # type: ignore[attr-defined]
        log.close()
        return proc

    def finish(self, proc: subprocess.Popen[str], timeout: float = REFRESH_TIMEOUT) -> str:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        text = Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
        self.logs.append(text)
        return text

    def run(self) -> tuple[int, str]:
        proc = self.start()
        out = self.finish(proc)
        return proc.returncode, out

    def fetch(self, sql: str, *args: Any) -> list[Any]:
        return helpers.fetch(self.settings, sql, *args)

    def val(self, sql: str, *args: Any) -> Any:
        rows = self.fetch(sql, *args)
        return rows[0][0] if rows else None


@pytest.fixture(scope="module")
def refresh_env(base_settings: Settings) -> Iterator[RefreshEnv]:
    from tests.fixtures.snapshots import ROWS

    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_rel"))
    helpers.create_database(settings)
    redis = RedisServer()
    redis.start()
    home = Path(tempfile.mkdtemp(prefix="pricecat-rel-prefect-"))
    try:
        helpers.load_rows(settings, ROWS)
        env = RefreshEnv(settings, redis, home)
        rc, out = env.run()
        assert rc == 0, out[-5000:]
        yield env
    finally:
        redis.stop()
        if not os.environ.get("PRICECAT_KEEP_TEST_DB"):
            helpers.drop_database(settings)


def catalog_schemas(env: RefreshEnv) -> set[str]:
    rows = env.fetch("select nspname from pg_namespace where nspname like 'catalog%'")
    return {r[0] for r in rows}


def mart_state(env: RefreshEnv) -> dict[str, Any]:
    return {
        "slugs": env.val("select count(*) from catalog.catalog_slug_summary"),
        "pairs": env.val("select count(*) from catalog.catalog_slug_seller_summary"),
        "snapshots": env.val(
            "select sum(snapshot_count) from catalog.catalog_slug_seller_summary"
        ),
        "max_seen": env.val("select max(last_seen_at) from catalog.catalog_slug_seller_summary"),
        "digest": env.val(
            "select md5(string_agg(s::text, '|' order by slug)) "
            "from catalog.catalog_slug_summary as s"
        ),
    }


def kill_group_when(proc: subprocess.Popen[str], ready: Any, timeout: float = 300) -> None:
    """SIGKILL the refresh's process group as soon as `ready()` holds."""
    def check() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"refresh ended (rc={proc.returncode}) before the kill point")
        return bool(ready())

    wait_until(check, timeout, interval=0.05, what="kill point")
    pids = [proc.pid, *descendants(proc.pid)]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # nothing of the killed run survives (no orphaned dbt still writing into catalog_build)
    wait_until(lambda: not any(Path(f"/proc/{p}").exists() and _not_zombie(p) for p in pids),
               30, what="killed processes gone")


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def dbt_building(proc: subprocess.Popen[str]) -> bool:
    for pid in descendants(proc.pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(c.endswith(b"dbt") for c in cmd[:2]) and b"build" in cmd:
            return True
    return False


def test_refresh_killed_midway_keeps_catalog_and_next_run_recovers(
    refresh_env: RefreshEnv,
) -> None:
    env = refresh_env
    before = mart_state(env)
    runs_before = env.val("select count(*) from catalog_ops.refresh_runs")
    gen_key = f"{env.settings.cache_namespace}:generation"
    gen_before = int(env.redis.command("get", gen_key) or 0)
    slug = env.val("select slug from catalog.catalog_slug_summary order by slug limit 1")

    server = ApiServer(api_env(env.settings, env.redis.url), name="refresh-kill")
    server.start()
    try:
        expected_product = server.get(f"/api/v1/products/{slug}").json()

        # kill 1: in the middle of `dbt build`, once tables exist in the build schema
        proc = env.start()
        kill_group_when(proc, lambda: dbt_building(proc) and (env.val(
            "select count(*) from pg_tables where schemaname = 'catalog_build'") or 0) >= 1)
        env.finish(proc)
        assert proc.returncode == -signal.SIGKILL

        # kill 2: as early as the run can be caught (its refresh_runs row just written)
        proc = env.start()
        kill_group_when(proc, lambda: env.val(
            "select count(*) from catalog_ops.refresh_runs") >= runs_before + 2)
        env.finish(proc)
        assert proc.returncode == -signal.SIGKILL

        # the published catalog is exactly the previous one, and the API still serves it
        assert mart_state(env) == before
        r = server.get(f"/api/v1/products/{slug}")
        assert r.status == 200 and r.json() == expected_product
        r = server.get("/api/v1/catalog?page_size=1&sort=price_desc")
        assert r.status == 200 and r.json()["total"] == before["slugs"]
        assert int(env.redis.command("get", gen_key) or 0) == gen_before
        killed = env.fetch(
            "select run_id, status, finished_at from catalog_ops.refresh_runs "
            "order by run_id offset $1", runs_before,
        )
        assert killed, "the killed runs left no trace in refresh_runs"
        # the last one is still 'running' (nobody could record its death); the first was
        # already marked 'aborted' by the second run, which held the lock after it
        assert len(killed) == 2, killed
        assert killed[-1]["status"] == "running" and killed[-1]["finished_at"] is None, killed
        assert killed[0]["status"] in ("running", "aborted"), killed

        # the next refresh succeeds, marks the dead runs, and cleans up after them
        rc, out = env.run()
        assert rc == 0, out[-5000:]
        runs = env.fetch(
            "select run_id, status, finished_at, error from catalog_ops.refresh_runs "
            "order by run_id offset $1", runs_before,
        )
        assert [r["status"] for r in runs] == ["aborted"] * len(killed) + ["published"], runs
        assert all(r["finished_at"] is not None for r in runs), runs
        assert catalog_schemas(env) == {"catalog", "catalog_ops"}
        assert int(env.redis.command("get", gen_key) or 0) == gen_before + 1
        after = mart_state(env)
        assert after == before  # same raw data → same marts
        r = server.get(f"/api/v1/products/{slug}")
        assert r.status == 200 and r.json() == expected_product
        assert server.alive()
    finally:
        server.stop()


def test_scraper_writes_during_refresh_lose_nothing(refresh_env: RefreshEnv) -> None:
    env = refresh_env
    template = env.fetch(
        "select id, product_name_normalized from public.product_price_snapshots "
        "where price is not null and availability is not null order by id desc limit 1"
    )[0]
    inserted: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def scraper() -> None:
        import asyncio

        import asyncpg

        async def go() -> None:
            conn = await asyncpg.connect(env.settings.database_url)
            try:
                n = 0
                while not stop.is_set():
                    # every 4th snapshot is a brand-new game, the rest a new price of an old one
                    slug = f"reliability-live-{n % 3}" if n % 4 == 0 else None
                    new_id = await conn.fetchval(
                        """
                        insert into public.product_price_snapshots (
                            scraped_at, seller, product_code, product_name_original,
                            product_name_normalized, price, availability, url, image_url,
                            description, categories
                        )
                        select
                            clock_timestamp(), seller, product_code,
                            coalesce($2, product_name_original),
                            coalesce($3, product_name_normalized),
                            price + ($4::int % 7), availability, url, image_url,
                            description, categories
                        from public.product_price_snapshots
                        where id = $1
                        returning id
                        """,
                        template["id"],
                        None if slug is None else f"Reliability Live {n % 3}",
                        slug,
                        n,
                    )
                    inserted.append(new_id)
                    n += 1
                    await asyncio.sleep(0.02)
            finally:
                await conn.close()

        try:
            asyncio.run(go())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    writer = threading.Thread(target=scraper, daemon=True)
    writer.start()
    try:
        wait_until(lambda: len(inserted) >= 5, 30, what="scraper started")
        before_refresh = len(inserted)
        last_id_before = inserted[-1]
        rc, out = env.run()
        during = len(inserted) - before_refresh
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not errors, errors
    assert rc == 0, out[-5000:]
    assert during > 10, "the scraper did not overlap the refresh"

    raw_count = env.val("select count(*) from public.product_price_snapshots")
    mid = mart_state(env)
    # a consistent cut: never more than the raw table, every snapshot from before the run in
    assert mid["snapshots"] <= raw_count
    assert mid["snapshots"] >= env.val(
        "select count(*) from public.product_price_snapshots where id <= $1", last_id_before)

    rc, out = env.run()  # quiet now: this run must include every snapshot
    assert rc == 0, out[-5000:]
    final = mart_state(env)
    raw_max = env.val("select max(scraped_at) from public.product_price_snapshots")
    assert final["snapshots"] == raw_count
    assert final["max_seen"] == raw_max
    per_slug = env.fetch(
        """
        select raw.slug, raw.n, coalesce(m.n, 0) as in_mart
        from (
            select product_name_normalized as slug, count(*) as n
            from public.product_price_snapshots group by 1
        ) as raw
        left join (
            select slug, sum(snapshot_count) as n
            from catalog.catalog_slug_seller_summary group by 1
        ) as m on m.slug = raw.slug
        where raw.n <> coalesce(m.n, 0)
        """
    )
    assert per_slug == [], per_slug
    new_slugs = env.fetch(
        "select slug from catalog.catalog_slug_summary where slug like 'reliability-live-%' "
        "order by slug"
    )
    assert [r["slug"] for r in new_slugs] == [f"reliability-live-{i}" for i in range(3)]
    last = env.fetch(
        "select status, source_max_scraped_at from catalog_ops.refresh_runs "
        "order by run_id desc limit 1"
    )[0]
    assert last["status"] == "published"
    assert last["source_max_scraped_at"] == raw_max
    assert catalog_schemas(env) == {"catalog", "catalog_ops"}
