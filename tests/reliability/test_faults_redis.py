"""Redis killed under a request stream: no 5xx, answers from Postgres (flagged as degraded), and
caching resumes by itself once Redis is back, with no API restart."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any
from urllib.parse import quote

from pricecat.config import Settings
from tests.reliability.conftest import api_env, degraded
from tests.reliability.procs import RedisServer, Resp, running_api, wait_until


class Stream:
    """Requests in a loop on a few background threads (concurrent clients), recording every
    answer or socket error."""

    def __init__(self, api: Any, paths: list[str], clients: int = 4) -> None:
        self.api = api
        self.paths = paths
        self.results: list[tuple[float, str, Resp | Exception]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True)
                        for k in range(clients)]

    def run(self, offset: int) -> None:
        i = offset * 7
        while not self.stop.is_set():
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                r: Resp | Exception = self.api.get(path, timeout=30)
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                r = exc
            self.results.append((time.monotonic(), path, r))

    def __enter__(self) -> Stream:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def count_after(self, t: float) -> int:
        return sum(1 for ts, _, _ in self.results if ts > t)


def test_redis_killed_during_stream_then_back(
    rel_settings: Settings, sample: dict[str, Any]
) -> None:
    redis = RedisServer()
    redis.start()
    try:
        env = api_env(rel_settings, redis.url)
        with running_api(env, name="redis-fault") as api:
            slug = sample["slug"]
            paths = [
                f"/api/v1/products/{slug}",
                "/api/v1/catalog?page=1&page_size=5",
                "/api/v1/meta/categories",
                f"/api/v1/search/suggest?q={quote(sample['name'][:4])}",
                "/api/v1/snapshots/recent?limit=5",
            ]
            # warm: miss then hit, remembering the bodies Redis and Postgres must both give
            expected: dict[str, Any] = {}
            for p in paths:
                first = api.get(p)
                assert first.status == 200, (p, first.status, first.text[:300])
                second = api.get(p)
                assert second.status == 200
                assert (second.header("x-cache") or "").lower() == "hit", (p, second.headers)
                expected[p] = second.json()

            # the stream mixes warm keys with keys no layer has seen (answered by Postgres)
            stream_paths = paths + [
                f"/api/v1/search/suggest?q=zz{i:04d}{secrets.token_hex(3)}" for i in range(200)
            ]
            with Stream(api, stream_paths) as stream:
                wait_until(lambda: len(stream.results) >= 20, 60, what="stream warm")
                killed_at = time.monotonic()
                redis.stop()
                wait_until(lambda: stream.count_after(killed_at) >= 60, 120,
                           what="requests while Redis is down")
            during = [(p, r) for ts, p, r in stream.results if ts > killed_at]
            errors = [(p, r) for _, p, r in stream.results
                      if isinstance(r, Exception) or r.status >= 500]
            assert not errors, errors[:5]
            for p, r in during:
                assert isinstance(r, Resp)
                assert r.status == 200, (p, r.status, r.text[:300])
                if p in expected:
                    assert r.json() == expected[p], p
                else:
                    assert r.json() == {"items": []}, (p, r.text[:200])
            # uncached requests well after the kill say they were served without the cache
            fresh = [r for p, r in during[-30:] if p not in expected and isinstance(r, Resp)]
            assert fresh and all(degraded(r) for r in fresh), [r.headers for r in fresh[:3]]
            # still able to answer: ready (degraded), so a load balancer keeps the instance
            ready = api.get("/readyz")
            assert ready.status == 200 and ready.json()["status"] == "degraded", ready.text

            # Redis back (same port, empty): caching resumes without restarting the API
            redis.start()
            probe = f"/api/v1/search/suggest?q=back{secrets.token_hex(3)}"

            def cached_again() -> bool:
                r = api.get(probe)
                assert r.status == 200, (r.status, r.text[:300])
                return (r.header("x-cache") or "").lower() == "hit"

            wait_until(cached_again, 60, interval=0.5, what="X-Cache: hit after Redis returned")
            keys = redis.command("--scan", "--pattern", f"{env['CACHE_NAMESPACE']}:*")
            assert "suggest:back" in keys, keys  # the hit came through Redis, not only memory
            final = api.get(probe)
            assert final.status == 200 and not degraded(final)
            ready = api.get("/readyz")
            assert ready.status == 200 and ready.json()["status"] == "ready", ready.text
            assert api.alive()
    finally:
        redis.stop()
