"""Redis unreachable -> answers from Postgres (X-Cache: bypass + metric); Postgres unreachable ->
cached answers still served, uncached -> 503 JSON; rate limit -> 429 with Retry-After.

The shared Redis and Postgres are never stopped: each case runs its own server pointed at a
closed port instead."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pricecat.config import Settings
from tests.api.conftest import ApiServer, free_port, metric_sum, run_server, server_settings


@pytest.fixture(scope="module")
def redis_down(db_settings: Settings, api_log_dir: Path) -> Iterator[ApiServer]:
    settings = server_settings(
        db_settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    with run_server(settings, api_log_dir) as server:
        yield server


def test_redis_down_answers_from_postgres(redis_down: ApiServer) -> None:
    for _ in range(2):
        r = redis_down.get("/api/v1/products/osadnici-z-katanu")
        assert r.status_code == 200
        assert r.headers["x-cache"] == "bypass"
        assert r.json()["min_price"] == 949.0
        assert [s["seller"] for s in r.json()["sellers"]] == [
            "tlamagames", "tlamagase", "svet-her",
        ]
    r = redis_down.get("/api/v1/catalog", params={"q": "osadnici"})
    assert r.status_code == 200 and r.headers["x-cache"] == "bypass"
    assert r.json()["total"] == 1
    assert redis_down.get("/api/v1/search/suggest?q=azul").json()["items"][0]["slug"] == "azul"
    samples = redis_down.metrics()
    assert metric_sum(samples, "pricecat_redis_degraded_total", endpoint="product") >= 2
    assert metric_sum(
        samples, "pricecat_cache_requests_total", endpoint="product", result="bypass"
    ) >= 2
    # still able to answer: a load balancer must keep this instance (degraded, said in the body)
    ready = redis_down.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["postgres"]["ok"] is True
    assert body["checks"]["read_models"]["ok"] is True


def test_postgres_down_serves_cached_and_503_for_uncached(
    db_settings: Settings, api_log_dir: Path
) -> None:
    settings = server_settings(db_settings)
    with run_server(settings, api_log_dir, cleanup=False) as good:
        older = good.get("/api/v1/products/azul")
        assert older.status_code == 200
        good.bump_generation()  # a refresh published: azul is cached only for the old one
        warm = good.get("/api/v1/meta/categories")
        assert warm.status_code == 200 and warm.headers["x-cache"] == "miss"
    down = settings.model_copy(
        update={"api_database_url": f"postgresql://pricecat_api@127.0.0.1:{free_port()}/x"}
    )
    # same namespace: the entry written by the first server is in Redis (not yet expired)
    with run_server(down, api_log_dir) as server:
        cached = server.get("/api/v1/meta/categories")
        assert cached.status_code == 200
        assert cached.headers["x-cache"] == "hit"
        assert cached.json() == warm.json()
        # not cached for this generation: the previous generation's entry beats a 503
        previous = server.get("/api/v1/products/azul")
        assert previous.status_code == 200 and previous.headers["x-cache"] == "stale"
        # older data: downstream caches may keep it seconds, never the product TTL (300 s)
        assert previous.headers["cache-control"] == "public, max-age=5"
        assert previous.json() == older.json()
        assert metric_sum(server.metrics(), "pricecat_cache_fallback_total") == 1
        uncached = server.get("/api/v1/catalog", params={"page": 2})
        assert uncached.status_code == 503
        assert uncached.json()["error"]["code"] == "database_unavailable"
        assert "Traceback" not in uncached.text and "asyncpg" not in uncached.text
        # the operator's side: one WARNING line naming the code, the URL and the cause
        logged = server.log_path.read_text()
        assert "503 database_unavailable on" in logged and "/api/v1/catalog?page=2" in logged
        assert "(request " in logged and ", cause " in logged and "Traceback" not in logged
        ready = server.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["details"]["checks"]["postgres"]["ok"] is False
        assert server.get("/healthz").status_code == 200


def test_rate_limit_429_with_retry_after(db_settings: Settings, api_log_dir: Path) -> None:
    settings = server_settings(db_settings, rate_limit_per_minute=3)
    with run_server(settings, api_log_dir) as server, server.client() as c:
        codes = [c.get("/api/v1/meta/categories").status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        limited = c.get("/api/v1/meta/categories")
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limited"
        assert c.get("/healthz").status_code == 200  # ops endpoints are not limited
