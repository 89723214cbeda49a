"""`pricecat refresh` killed with SIGKILL mid-build, and the scraper writing during a refresh.

Runs on its own throwaway database (the fixture rows) with its own Redis, so the swaps never touch
the session's fixture database. The refresh runs as a real subprocess in its own process group;
the kill is SIGKILL to the whole group (the refresh and its dbt child), the way an OOM-killed
container or `systemctl kill -s KILL` ends a job.

One Prefect server (`prefect server start`, private PREFECT_HOME, PREFECT_API_URL set) serves
every refresh here: without it each `pricecat refresh` starts a temporary server (~30 s each).
The marts are first built with a plain dbt build (the "previous data"), then:
1. a refresh killed mid-`dbt build`, and one killed right after it wrote its run-log row;
2. the next refresh, while a scraper keeps inserting snapshots: it succeeds, marks the dead runs
   'aborted', leaves no staging/old schema, and publishes a consistent cut;
3. one more quiet refresh: every snapshot the scraper wrote is in the marts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.procs import Service
from pricecat.config import Settings
from tests import helpers
from tests.fixtures.expected import QUARANTINED
from tests.reliability.conftest import api_env
from tests.reliability.procs import (
    PRICECAT,
    REPO_ROOT,
    VENV_BIN,
    ApiServer,
    RedisServer,
    descendants,
    free_port,
    wait_until,
)

REFRESH_TIMEOUT = 600


class RefreshEnv:
    def __init__(self, settings: Settings, redis: RedisServer, prefect_home: Path,
                 prefect_api_url: str) -> None:
        self.settings = settings
        self.redis = redis
        self.env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": redis.url,
            "CACHE_NAMESPACE": settings.cache_namespace,
            # a private Prefect home: no shared SQLite with other test runs on this machine
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_API_URL": prefect_api_url,
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
        log_path = Path(proc.log_path)  # type: ignore[attr-defined]
        text = log_path.read_text(errors="replace")
        log_path.unlink(missing_ok=True)
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
def prefect_server() -> Iterator[tuple[str, Path]]:
    home = Path(tempfile.mkdtemp(prefix="pricecat-rel-prefect-"))
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    server = Service(
        "prefect server",
        [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        home / "server.log", env,
    ).start()
    url = f"http://127.0.0.1:{port}/api"
    try:
        server.wait_http(url + "/health", timeout=180)
        yield url, home
    finally:
        server.stop(timeout=20, group=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def refresh_env(
    base_settings: Settings, prefect_server: tuple[str, Path]
) -> Iterator[RefreshEnv]:
    from tests.fixtures.snapshots import ROWS

    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_rel"))
    helpers.create_database(settings)
    redis = RedisServer()
    redis.start()
    try:
        helpers.load_rows(settings, ROWS)
        helpers.dbt_build_into(settings, "catalog")  # the "previous data" the API serves
        url, home = prefect_server
        yield RefreshEnv(settings, redis, home, url)
    finally:
        redis.stop()
        if not os.environ.get("PRICECAT_KEEP_TEST_DB"):
            helpers.drop_database(settings)


def catalog_schemas(env: RefreshEnv) -> set[str]:
    """The catalog schemas, the one kept old schema (flows/refresh.py keeps the newest
    `catalog_old_*` for replicas; two right after a publish) counted as `catalog_old`."""
    rows = env.fetch("select nspname from pg_namespace where nspname like 'catalog%'")
    names = [r[0] for r in rows]
    assert sum(n.startswith("catalog_old_") for n in names) <= 2, names
    return {"catalog_old" if n.startswith("catalog_old_") else n for n in names}


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


class Scraper:
    """Inserts snapshots on its own connection until stopped: every 4th one a brand-new game
    (3 of them), the others a new price of an existing listing, each in its own transaction."""

    def __init__(self, env: RefreshEnv) -> None:
        self.env = env
        self.template = env.val(
            "select id from public.product_price_snapshots "
            "where price is not null and availability is not null order by id desc limit 1"
        )
        self.inserted: list[int] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        try:
            conn = await asyncpg.connect(self.env.settings.database_url)
            try:
                n = 0
                while not self.stop.is_set():
                    slug = f"reliability-live-{(n // 4) % 3}" if n % 4 == 0 else None
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
                        self.template,
                        None if slug is None else slug.replace("-", " ").title(),
                        slug,
                        n,
                    )
                    self.inserted.append(new_id)
                    n += 1
                    await asyncio.sleep(0.02)
            finally:
                await conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def __enter__(self) -> Scraper:
        self.thread.start()
        wait_until(lambda: len(self.inserted) >= 5 or bool(self.errors), 30, what="scraper")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def test_killed_refreshes_then_refresh_under_scraper_writes(
    refresh_env: RefreshEnv, figures: dict[str, Any]
) -> None:
    env = refresh_env
    before = mart_state(env)
    gen_before = int(env.val("select build_id from catalog.catalog_build_info"))
    slug = env.val("select slug from catalog.catalog_slug_summary order by slug limit 1")

    server = ApiServer(api_env(env.settings, env.redis.url), name="refresh-kill")
    server.start()
    try:
        expected_product = server.get(f"/api/v1/products/{slug}").json()

        # --- 1. kill in the middle of `dbt build`, once tables exist in the build schema
        proc = env.start()
        kill_group_when(proc, lambda: dbt_building(proc) and (env.val(
            "select count(*) from pg_tables where schemaname = 'catalog_build'") or 0) >= 1)
        env.finish(proc)
        assert proc.returncode == -signal.SIGKILL

        # --- and one killed as early as it can be caught (its run-log row just written)
        proc = env.start()
        kill_group_when(proc, lambda: env.val("select count(*) from catalog_ops.refresh_runs") >= 2)
        env.finish(proc)
        assert proc.returncode == -signal.SIGKILL

        # the published catalog is exactly the previous one, and the API still serves it
        assert mart_state(env) == before
        r = server.get(f"/api/v1/products/{slug}")
        assert r.status == 200 and r.json() == expected_product
        r = server.get("/api/v1/catalog?page_size=1&sort=price_desc")
        assert r.status == 200 and r.json()["total"] == before["slugs"]
        assert int(env.val("select build_id from catalog.catalog_build_info")) == gen_before
        killed = env.fetch(
            "select run_id, status, finished_at from catalog_ops.refresh_runs order by run_id"
        )
        # the last one is still 'running' (nobody could record its death); the first may already
        # be marked 'aborted' by the second run, which held the lock after it
        assert len(killed) == 2, killed
        assert killed[-1]["status"] == "running" and killed[-1]["finished_at"] is None, killed
        assert killed[0]["status"] in ("running", "aborted"), killed

        # --- 2. the next refresh, with the scraper writing all along
        with Scraper(env) as scraper:
            last_id_before = scraper.inserted[-1]
            rc, out = env.run()
            last_id_during = scraper.inserted[-1]
        assert not scraper.errors, scraper.errors
        assert rc == 0, out[-5000:]
        during = [i for i in scraper.inserted if last_id_before < i <= last_id_during]
        assert len(during) > 10, "the scraper did not overlap the refresh"

        runs = env.fetch(
            "select run_id, status, finished_at, error from catalog_ops.refresh_runs "
            "order by run_id"
        )
        assert [r["status"] for r in runs] == ["aborted", "aborted", "published"], runs
        assert all(r["finished_at"] is not None for r in runs), runs
        assert catalog_schemas(env) == {"catalog", "catalog_old", "catalog_ops", "catalog_state"}
        assert int(env.val("select build_id from catalog.catalog_build_info")) > gen_before
        raw_count = env.val("select count(*) from public.product_price_snapshots")
        mid = mart_state(env)
        # a consistent cut: never more than the raw table, everything from before the run in
        assert mid["snapshots"] <= raw_count
        assert mid["snapshots"] >= env.val(
            "select count(*) from public.product_price_snapshots where id <= $1", last_id_before)
        r = server.get(f"/api/v1/products/{slug}")
        assert r.status == 200, (r.status, r.text[:300])

        # --- 3. a quiet refresh: every snapshot the scraper wrote is in the marts
        rc, out = env.run()
        assert rc == 0, out[-5000:]
        final = mart_state(env)
        # every raw row but the fixture's quarantined ones (tests/fixtures/expected.py)
        raw_count = env.val(
            "select count(*) from public.product_price_snapshots where id not in "
            "(select snapshot_id from catalog.catalog_quarantined_snapshots)"
        )
        assert env.val("select count(*) from catalog.catalog_quarantined_snapshots") == len(
            QUARANTINED
        )
        raw_max = env.val("select max(scraped_at) from public.product_price_snapshots")
        assert final["snapshots"] == raw_count
        assert final["max_seen"] == raw_max
        per_slug = env.fetch(
            """
            select raw.slug, raw.n, coalesce(m.n, 0) as in_mart
            from (
                select product_name_normalized as slug, count(*) as n
                from public.product_price_snapshots
                where id not in (select snapshot_id from catalog.catalog_quarantined_snapshots)
                group by 1
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
            "select slug from catalog.catalog_slug_summary "
            "where slug like 'reliability-live-%' order by slug"
        )
        assert [r["slug"] for r in new_slugs] == [f"reliability-live-{i}" for i in range(3)]
        r = server.get("/api/v1/products/reliability-live-0")
        assert r.status == 200, (r.status, r.text[:300])
        last = env.fetch(
            "select status, source_max_scraped_at from catalog_ops.refresh_runs "
            "order by run_id desc limit 1"
        )[0]
        assert last["status"] == "published"
        assert last["source_max_scraped_at"] == raw_max
        assert catalog_schemas(env) == {"catalog", "catalog_old", "catalog_ops", "catalog_state"}
        assert server.alive()
        figures["refresh_faults"] = {
            "killed_runs": [dict(r) for r in runs[:2]],
            "scraper_rows_total": len(scraper.inserted),
            "scraper_rows_during_refresh": len(during),
            "published_cut_snapshots": mid["snapshots"],
            "raw_rows_after": raw_count,
            "marts_snapshots_after_next_refresh": final["snapshots"],
        }
    finally:
        server.stop()
