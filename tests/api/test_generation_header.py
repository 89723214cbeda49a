"""X-Pricecat-Generation on cached answers: the build the answer's data is from, which nginx's
micro-cache compares with the build it keys by (deploy/nginx/micro-cache.conf) before storing.
An answer that may be another build's (the previous generation's entry, X-Cache: stale) carries
none. Real server, Postgres and Redis."""

from __future__ import annotations

from pathlib import Path

from pricecat.config import Settings
from tests.api.conftest import ApiServer, free_port, run_server, server_settings

PRODUCT = "/api/v1/products/azul"


def test_miss_hit_fast_path_and_304_name_the_answered_build(api: ApiServer) -> None:
    generation = api.bump_generation()
    with api.client() as c:
        first = c.get(PRODUCT)
        assert first.status_code == 200 and first.headers["x-cache"] == "miss"
        assert first.headers["x-pricecat-generation"] == str(generation)
        # the full path's hit, then the remembered URL's fast path (api.http.ResponseMemo)
        for _ in range(3):
            r = c.get(PRODUCT)
            assert r.headers["x-cache"] == "hit"
            assert r.headers["x-pricecat-generation"] == str(generation)
        not_modified = c.get(PRODUCT, headers={"If-None-Match": first.headers["etag"]})
        assert not_modified.status_code == 304
        assert not_modified.headers["x-pricecat-generation"] == str(generation)
        missing = c.get("/api/v1/products/no-such-game")
        assert missing.status_code == 404
        assert missing.headers["x-pricecat-generation"] == str(generation)
    # a publish: the same URL's answer names the new build
    newer = api.bump_generation()
    r = api.get(PRODUCT)
    assert r.headers["x-cache"] == "miss"
    assert r.headers["x-pricecat-generation"] == str(newer)


def test_the_previous_generations_entry_carries_no_generation(
    db_settings: Settings, api_log_dir: Path
) -> None:
    settings = server_settings(db_settings)
    with run_server(settings, api_log_dir, cleanup=False) as good:
        older = good.get(PRODUCT)
        assert older.headers["x-pricecat-generation"].isdigit()
        current = good.bump_generation()  # azul is cached only for the previous build
        warm = good.get("/api/v1/meta/categories")
        assert warm.headers["x-pricecat-generation"] == str(current)
    down = settings.model_copy(
        update={"api_database_url": f"postgresql://pricecat_api@127.0.0.1:{free_port()}/x"}
    )
    with run_server(down, api_log_dir) as server:
        # Postgres unreachable: the previous build's entry is answered (stale), nginx must not
        # store it under the current build
        previous = server.get(PRODUCT)
        assert previous.status_code == 200 and previous.headers["x-cache"] == "stale"
        assert "x-pricecat-generation" not in previous.headers
        cached = server.get("/api/v1/meta/categories")
        assert cached.headers["x-cache"] == "hit"
        assert cached.headers["x-pricecat-generation"] == str(current)
