"""Postgres unreachable (through a cuttable TCP proxy, never touching the shared server): cached
keys still 200, uncached requests answer 503 JSON instead of hanging, and the pool recovers by
itself. Plus the statement timeout: a query stuck behind a lock → 503/504 JSON, worker healthy.

Why a proxy rather than a throwaway cluster: the fixture database (built once per session by
dbt) stays where it is, the outage is instant and exact (refused, or a silent black hole that only
client-side timeouts can catch), and restoring it is instantaneous — no initdb/pg_ctl as a
non-root user and no second dbt build.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from pricecat.config import Settings, parse_database_url
from tests.reliability.conftest import api_env, assert_error_json
from tests.reliability.procs import ApiServer, PgProxy, RedisServer, running_api, wait_until

#: The API instances here run with a 2 s statement timeout (and the pool's own 3 s connect
#: timeout); a client that waits 10x longer and still has no answer has met a hang. A generous
#: bound for "answers instead of hanging", not a latency assertion.
STATEMENT_TIMEOUT_MS = 2000
CLIENT_TIMEOUT = 20.0


@pytest.fixture()
def proxy(rel_settings: Settings) -> Iterator[PgProxy]:
    pg = parse_database_url(rel_settings.database_url)
    p = PgProxy(pg.host, pg.port)
    p.start()
    try:
        yield p
    finally:
        p.close()


def _proxied_env(settings: Settings, proxy: PgProxy, redis: RedisServer) -> dict[str, str]:
    return api_env(
        settings,
        redis.url,
        DATABASE_URL=proxy.url_for(settings.database_url),
        API_DATABASE_URL=proxy.url_for(settings.api_database_url),
        STATEMENT_TIMEOUT_MS=STATEMENT_TIMEOUT_MS,
    )


def _warm(api: ApiServer, paths: list[str]) -> dict[str, Any]:
    bodies = {}
    for p in paths:
        assert api.get(p).status == 200, p
        r = api.get(p)
        assert r.status == 200 and (r.header("x-cache") or "").lower() == "hit", (p, r.headers)
        bodies[p] = r.json()
    return bodies


def _uncached_paths() -> list[str]:
    token = secrets.token_hex(4)
    return [
        f"/api/v1/search/suggest?q=zz{token}",
        f"/api/v1/catalog?q=zz{token}",
        f"/api/v1/products/no-such-game-{token}",
    ]


@pytest.mark.parametrize("mode", ["refuse", "blackhole", "partition"])
def test_postgres_unreachable_then_back(
    rel_settings: Settings, own_redis: RedisServer, proxy: PgProxy,
    sample: dict[str, Any], mode: str,
) -> None:
    with running_api(_proxied_env(rel_settings, proxy, own_redis), name=f"pg-{mode}") as api:
        cached = [f"/api/v1/products/{sample['slug']}", "/api/v1/meta/categories",
                  "/api/v1/catalog?page=1&page_size=3"]
        bodies = _warm(api, cached)

        getattr(proxy, mode)()
        for p in cached:
            r = api.get(p, timeout=CLIENT_TIMEOUT)
            assert r.status == 200, (mode, p, r.status, r.text[:300])
            assert r.json() == bodies[p]
        for p in _uncached_paths():
            r = api.get(p, timeout=CLIENT_TIMEOUT)  # raises TimeoutError if the API hangs
            body = assert_error_json(r, 503)
            assert body["error"]["code"], body
        ready = api.get("/readyz", timeout=CLIENT_TIMEOUT)
        assert ready.status == 503, (ready.status, ready.text[:300])
        assert api.alive()

        proxy.restore()

        def recovered() -> bool:
            r = api.get(f"/api/v1/search/suggest?q=zz{secrets.token_hex(4)}",
                        timeout=CLIENT_TIMEOUT)
            assert r.status in (200, 503), (r.status, r.text[:300])
            return r.status == 200

        wait_until(recovered, 60, interval=0.5, what="pool recovery")
        for p in _uncached_paths()[:2]:
            r = api.get(p, timeout=CLIENT_TIMEOUT)
            assert r.status == 200, (p, r.status, r.text[:300])
            assert r.json()["items"] == []
        r = api.get(_uncached_paths()[2])
        assert_error_json(r, 404)
        assert api.get("/readyz").status == 200
        assert api.alive()


class TableLock:
    """Holds ACCESS EXCLUSIVE on a table from another connection until released."""

    def __init__(self, database_url: str, table: str) -> None:
        self.database_url = database_url
        self.table = table
        self.locked = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._hold()), daemon=True)

    async def _hold(self) -> None:
        try:
            conn = await asyncpg.connect(self.database_url)
            try:
                tr = conn.transaction()
                await tr.start()
                await conn.execute(f"lock table {self.table} in access exclusive mode")
                self.locked.set()
                while not self.release.is_set():
                    await asyncio.sleep(0.05)
                await tr.rollback()
            finally:
                await conn.close()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc
            self.locked.set()

    def __enter__(self) -> TableLock:
        self.thread.start()
        assert self.locked.wait(30) and self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(timeout=30)


def test_statement_timeout_gives_503_and_worker_stays_healthy(
    rel_settings: Settings, own_redis: RedisServer, sample: dict[str, Any]
) -> None:
    env = api_env(rel_settings, own_redis.url, STATEMENT_TIMEOUT_MS=300)
    with running_api(env, name="stmt-timeout") as api:
        assert api.get(f"/api/v1/products/{sample['slug']}").status == 200  # pool is warm
        workers_before = sorted(api.worker_pids())
        with TableLock(rel_settings.database_url, "catalog.catalog_slug_summary"):
            for p in _uncached_paths()[:2]:
                r = api.get(p, timeout=CLIENT_TIMEOUT)
                assert_error_json(r, (503, 504))
            assert api.get("/healthz").status == 200
        # the lock is gone: the same worker answers normally
        r = api.get(f"/api/v1/search/suggest?q=zz{secrets.token_hex(4)}")
        assert r.status == 200, (r.status, r.text[:300])
        r = api.get(f"/api/v1/catalog?q={quote(sample['name'])}")
        assert r.status == 200, (r.status, r.text[:300])
        assert sample["slug"] in [item["slug"] for item in r.json()["items"]]
        r = api.get(f"/api/v1/products/{sample['slug']}")
        assert r.status == 200
        assert sorted(api.worker_pids()) == workers_before
        assert api.alive()
