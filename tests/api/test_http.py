"""The one If-None-Match matcher (api/http.py etag_matches, used by the cached JSON answers, the
Atom feed and the image proxy), the one bounded LRU helper (api/lru.py), and the raw-URL fast
path answering exactly what the full path answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.http import etag_matches
from api.lru import LRU
from pricecat.config import Settings
from tests.api.conftest import ALLOWED_ORIGIN, ApiServer, metric_sum, run_server, server_settings

TAG = '"abc123"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"abc123"', True),  # quoted, as sent back by browsers
        ("abc123", True),  # bare (lenient: some clients strip the quotes)
        ('W/"abc123"', True),  # weak comparison: W/ matches the strong tag
        ("W/abc123", True),
        ('"zzz", "abc123"', True),  # a list
        ('"zzz",W/"abc123" ', True),
        ("*", True),  # any current representation
        (" * ", True),
        ('"abc123-gzip"', False),  # another validator (unless passed as one of the tags)
        ('"abc12"', False),
        ('"zzz", "yyy"', False),
        ("", False),
        (None, False),
    ],
)
def test_etag_matches_forms(header: str | None, expected: bool) -> None:
    assert etag_matches(header, TAG) is expected


def test_etag_matches_any_of_several_tags_and_none_without_a_tag() -> None:
    assert etag_matches('"abc123-gzip"', TAG, '"abc123-gzip"')
    assert etag_matches('W/"abc123-gzip"', TAG, '"abc123-gzip"')
    assert not etag_matches("*", "")  # no representation tag: nothing to match
    assert not etag_matches('""', "")


def test_lru_bounds_entries_bytes_and_expiry() -> None:
    now = [100.0]
    lru: LRU[str, int] = LRU(3, max_bytes=10, clock=lambda: now[0])
    for i, key in enumerate("abc"):
        lru.put(key, i, size=3)
    assert lru.bytes == 9 and len(lru) == 3
    assert lru.get("a") == 0  # a is now the most recent: b goes first
    lru.put("d", 3, size=3)  # 4 entries > 3
    assert "b" not in lru and list(lru) == ["c", "a", "d"]
    lru.put("e", 4, size=5)  # 14 bytes > 10: the least recent go until it fits
    assert list(lru) == ["d", "e"] and lru.bytes == 8
    lru.put("t", 5, ttl=2.0, size=1)
    now[0] += 1.9
    assert lru.get("t") == 5
    now[0] += 0.1
    assert lru.get("t") is None and "t" not in lru and lru.bytes == 8
    lru.put("d", 6, size=1)  # replacing counts the new size only
    assert lru.bytes == 6 and lru.get("d") == 6
    off: LRU[str, int] = LRU(0)
    off.put("x", 1)
    assert len(off) == 0


@pytest.fixture(scope="module")
def fast_api(db_settings: Settings, api_log_dir: Path) -> Iterator[ApiServer]:
    """A server with the default generation check interval (the session's `api` fixture reads
    the generation on every request, which never takes the fast path)."""
    env = {"API_GENERATION_CHECK_SECONDS": "1"}
    settings = server_settings(db_settings, cors_origins=(ALLOWED_ORIGIN,))
    with run_server(settings, api_log_dir, env=env) as server:
        yield server


def test_fast_path_answers_like_the_full_path(fast_api: ApiServer) -> None:
    """The second GET of a raw URL is answered from the response memo: same status, body,
    ETag, Cache-Control and X-Cache as the first; gzip and 304 (every If-None-Match form)
    still follow the request's headers."""
    api = fast_api
    path = "/api/v1/catalog?page=1&page_size=7&sort=price_desc"
    plain = {"Accept-Encoding": "identity"}  # httpx asks for gzip by default
    first = api.get(path, headers=plain)
    assert first.status_code == 200 and "content-encoding" not in first.headers
    second = api.get(path, headers=plain)
    for r in (first, second):
        assert r.headers["cache-control"] == "public, max-age=120"
        assert r.headers["vary"] == "Accept-Encoding"
    assert second.headers["x-cache"] == "hit"
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    etag = first.headers["etag"]
    for inm in (etag, etag.strip('"'), "W/" + etag, f'"nope", {etag}', "*"):
        r = api.get(path, headers={**plain, "If-None-Match": inm})
        assert r.status_code == 304, inm
        assert r.headers["etag"] == etag
    assert api.get(path, headers={**plain, "If-None-Match": '"nope"'}).status_code == 200
    with api.client() as c:
        zipped = c.get(path, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["etag"] == etag[:-1] + '-gzip"'
    assert zipped.content == first.content  # decoded by httpx
    # the gzip tag revalidates the same document
    r = api.get(path, headers={"If-None-Match": zipped.headers["etag"]})
    assert r.status_code == 304
    # CORS and the request metrics still apply to answers from the memo
    before = api.metrics()
    cors = api.get(path, headers={**plain, "Origin": ALLOWED_ORIGIN})
    assert cors.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert cors.headers["vary"] == "Accept-Encoding, Origin"
    assert cors.content == first.content
    for _ in range(3):
        api.get(path, headers=plain)
    after = api.metrics()

    def delta(name: str, **labels: str) -> float:
        return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)

    assert delta("pricecat_http_requests_total", route="/api/v1/catalog", status="200") == 4
    assert delta("pricecat_http_request_duration_seconds_count", route="/api/v1/catalog") == 4
    assert delta("pricecat_cache_requests_total", endpoint="catalog", layer="memory") == 4
    # bad input is never answered from the memo: validation still runs on the full path
    assert api.get(path + "&page_size=0").status_code == 400
    # a HEAD of a remembered URL takes the full path and answers the same headers, no body
    with api.client() as c:
        head = c.head(path, headers=plain)
    assert head.status_code == 200 and head.headers["etag"] == etag


def test_fast_path_ends_with_the_generation(fast_api: ApiServer) -> None:
    """A remembered URL is answered from memory only while its generation is current: after a
    publish, the next check turns it into a miss of the new generation. The current generation
    is trusted for 1 s after its last read, plus a 0.25 s grace while a re-read runs
    (api/cache.py), so 1.5 s after the publish no worker answers the old one."""
    api = fast_api
    path = "/api/v1/products/cerna-kocka"
    api.get(path)
    assert api.get(path).headers["x-cache"] == "hit"
    api.bump_generation()
    time.sleep(1.5)
    assert api.get(path).headers["x-cache"] == "miss"
    assert api.get(path).headers["x-cache"] == "hit"


def test_fast_path_keeps_the_rate_limit(db_settings: Settings, api_log_dir: Path) -> None:
    """Answers from the memo (sent before routing, api.http.ApiSanic) still spend the client's
    rate-limit tokens; the 429 is the JSON error, with CORS headers, counted under the route."""
    settings = server_settings(db_settings, rate_limit_per_minute=3, cors_origins=(ALLOWED_ORIGIN,))
    # the generation is trusted for minutes: every repeat of the URL is a fast-path candidate
    env = {"API_GENERATION_CHECK_SECONDS": "300"}
    path = "/api/v1/products/cerna-kocka"
    headers = {"Origin": ALLOWED_ORIGIN, "Accept-Encoding": "identity"}
    with run_server(settings, api_log_dir, env=env) as server, server.client() as c:
        answers = [c.get(path, headers=headers) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert [r.headers["x-cache"] for r in answers] == ["miss", "hit", "hit"]
        before = server.metrics()
        limited = c.get(path, headers=headers)
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        after = server.metrics()
    route = "/api/v1/products/<slug:str>"
    counted = metric_sum(after, "pricecat_http_requests_total", route=route, status="429")
    assert (
        counted - metric_sum(before, "pricecat_http_requests_total", route=route, status="429") == 1
    )
