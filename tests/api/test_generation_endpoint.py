"""GET /api/v1/meta/generation: the worker's data generation and the cache generation nginx keys
its micro-cache by (deploy/nginx/micro-cache.conf). Real server, Postgres and Redis.

The session server reads the generation on every request (API_GENERATION_CHECK_SECONDS=0), so a
generation becomes the cache generation 0 + 0.5 s (SETTLE_MARGIN_SECONDS) after it was first
reported."""

from __future__ import annotations

import time
from pathlib import Path

from redis import Redis

from tests.api.conftest import ApiServer, run_server
from tests.helpers import fetch

PATH = "/api/v1/meta/generation"


def _published(api: ApiServer) -> int:
    return int(fetch(api.settings, "select build_id from catalog.catalog_build_info")[0][0])


def _ask(api: ApiServer) -> tuple[int, int | None]:
    r = api.get(PATH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"generation", "cache_generation"}
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-pricecat-generation"] == str(body["generation"])
    # nginx keeps the answer until the end of the current second
    assert abs(int(r.headers["x-accel-expires"].removeprefix("@")) - time.time()) < 2
    cache_gen = body["cache_generation"]
    if cache_gen is None:
        assert "x-pricecat-cache-generation" not in r.headers
    else:
        assert r.headers["x-pricecat-cache-generation"] == str(cache_gen)
    return body["generation"], cache_gen


def test_generation_is_the_published_build_and_settles_after_the_hold(api: ApiServer) -> None:
    g0 = _published(api)
    generation, _ = _ask(api)
    assert generation == g0
    time.sleep(0.7)  # > 0 s check interval + 0.5 s margin since g0 was first reported
    assert _ask(api) == (g0, g0)

    g1 = api.bump_generation()
    assert g1 > g0
    # the worker answers from g1 at once; nginx keeps keying by g0 until every worker must have
    # had g1 for its check interval + the margin
    assert _ask(api) == (g1, g0)
    time.sleep(0.2)
    assert _ask(api) == (g1, g0)
    time.sleep(0.5)
    assert _ask(api) == (g1, g1)


def test_first_report_time_is_shared_through_redis(api: ApiServer) -> None:
    generation, _ = _ask(api)
    r = Redis.from_url(api.settings.redis_url)
    try:
        raw = r.get(f"{api.settings.cache_namespace}:generation-first-seen:{generation}")
        ttl = r.ttl(f"{api.settings.cache_namespace}:generation-first-seen:{generation}")
    finally:
        r.close()
    assert raw is not None
    first = float(raw)
    assert time.time() - 60 < first <= time.time()
    assert 0 < ttl <= 7 * 86400


def test_unknown_parameter_is_rejected(api: ApiServer) -> None:
    r = api.get(PATH + "?x=1")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unknown_parameter"


def test_documented_in_openapi(api: ApiServer) -> None:
    spec = api.get("/docs/openapi.json").json()
    op = spec["paths"][PATH]["get"]
    assert "cache_generation" in op["description"]
    assert "200" in op["responses"]


def test_a_worker_started_inside_the_hold_keys_by_the_build_settled_before(
    api: ApiServer, api_log_dir: Path
) -> None:
    """A fresh worker has settled nothing itself: it reports the build another worker settled
    (shared through Redis), not null (which would make nginx pass every request through)."""
    g0, _ = _ask(api)
    time.sleep(0.7)
    assert _ask(api) == (g0, g0)  # api settles g0 and shares it
    g1 = api.bump_generation()
    assert _ask(api) == (g1, g0)  # g1 first reported now
    # same namespace, a 30 s check interval: g1 stays inside its hold (30.5 s) for this test
    with run_server(api.settings, api_log_dir, env={"API_GENERATION_CHECK_SECONDS": "30"},
                    cleanup=False) as fresh:
        assert _ask(fresh) == (g1, g0)
