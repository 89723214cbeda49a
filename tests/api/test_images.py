"""The same-origin image proxy (GET /api/v1/images/{slug}) against the fixture database: 404s,
placeholders (no image; the seller's host unreachable, too large, not an image, a redirect to a
non-http URL) and a real fetch from a local HTTP server, cached in Redis and served after the
upstream is gone.

The real-fetch cases point fixture slugs' hero_image_url at a server of this test (an UPDATE
of the session's throwaway database, as postgres, restored afterwards) and use their own API
server (own cache namespace, fresh per-worker memo of failed fetches)."""

from __future__ import annotations

import asyncio
import http.server
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from redis import Redis

from api import images
from pricecat.config import Settings
from tests.api.conftest import ApiServer, free_port, run_server, server_settings


def closed_port() -> int:
    """A local port nobody listens on (free_port closes its socket)."""
    return free_port()


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


PNG = tiny_png()
BIG = b"\x89PNG" + b"\x00" * (2 * 1024 * 1024)  # just over 2 MB
SVG_WITH_SCRIPT = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'

#: path -> (status, headers, body) served by the local "seller" host
ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/x.png": (200, {"Content-Type": "image/png"}, PNG),
    "/big.png": (200, {"Content-Type": "image/png"}, BIG),
    "/page.html": (200, {"Content-Type": "text/html"}, b"<html>not an image</html>"),
    "/evil.svg": (200, {"Content-Type": "image/svg+xml"}, SVG_WITH_SCRIPT),
    "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
    "/to-png": (302, {"Location": "/x.png"}, b""),
    "/gone.png": (404, {"Content-Type": "text/plain"}, b"nope"),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).hits.append(self.path)
        status, headers, body = ROUTES.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, http.server.ThreadingHTTPServer]]:
    _Handler.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()


async def _set_hero_urls(settings: Settings, urls: dict[str, str | None]) -> dict[str, str | None]:
    """Set hero_image_url per slug (as postgres); returns the previous values."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        previous: dict[str, str | None] = {}
        async with conn.transaction():
            for slug, url in urls.items():
                previous[slug] = await conn.fetchval(
                    "select hero_image_url from catalog.catalog_slug_summary where slug = $1",
                    slug,
                )
                await conn.execute(
                    "update catalog.catalog_slug_summary set hero_image_url = $2 where slug = $1",
                    slug, url,
                )
        return previous
    finally:
        await conn.close()


def assert_placeholder(r: object, initials: str, name: str) -> None:
    import httpx

    assert isinstance(r, httpx.Response)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/svg+xml"
    assert r.headers["x-image"] == "placeholder"
    assert r.headers["cache-control"] == "public, max-age=300"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    body = r.text
    assert body.startswith("<svg ") and body.endswith("</svg>")
    assert f">{initials}</text>" in body
    assert f"<title>{name}</title>" in body
    assert "<script" not in body


def test_unknown_slug_is_a_json_404(api: ApiServer) -> None:
    r = api.get("/api/v1/images/no-such-product")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "error": {
            "code": "not_found",
            "message": "No product with slug 'no-such-product'",
            "details": {"parameter": "slug", "value": "no-such-product"},
        }
    }


def test_invalid_slug_and_parameters_are_400(api: ApiServer) -> None:
    r = api.get("/api/v1/images/Bad%20Slug")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_parameter"
    assert r.json()["error"]["details"]["parameter"] == "slug"
    r = api.get("/api/v1/images/agricola", params={"url": "http://127.0.0.1/"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unknown_parameter"


def test_unreachable_seller_host_gives_the_placeholder(api: ApiServer) -> None:
    # the fixture's https://img.tlamagase.cz/... is unreachable here (no internet)
    r = api.get("/api/v1/images/osadnici-z-katanu")
    assert_placeholder(r, "OZ", "Osadníci z Katanu")
    again = api.get("/api/v1/images/osadnici-z-katanu")
    assert_placeholder(again, "OZ", "Osadníci z Katanu")
    assert again.content == r.content
    assert again.headers["etag"] == r.headers["etag"]


def test_product_without_image_gives_the_placeholder(api: ApiServer) -> None:
    assert api.get("/api/v1/products/tajemny-ostrov").json()["hero_image_url"] is None
    r = api.get("/api/v1/images/tajemny-ostrov")
    assert_placeholder(r, "TO", "Tajemný ostrov")
    assert r.headers["x-cache"] in ("miss", "hit")
    etag = r.headers["etag"]
    r304 = api.get("/api/v1/images/tajemny-ostrov", headers={"If-None-Match": etag})
    assert r304.status_code == 304 and r304.content == b""


def test_fetch_cache_and_refusals(
    db_settings: Settings, api_log_dir: Path,
    upstream: tuple[str, http.server.ThreadingHTTPServer],
) -> None:
    base, server = upstream
    urls: dict[str, str | None] = {
        "pan-tau": f"{base}/x.png",
        "azul": f"{base}/to-png",
        "dixit": f"{base}/big.png",
        "splendor": f"{base}/page.html",
        "bang": f"{base}/evil.svg",
        "patchwork": f"{base}/to-file",
        "hanabi": f"{base}/gone.png",
        "carcassonne": f"http://127.0.0.1:{closed_port()}/c.png",  # connection refused
    }
    previous = asyncio.run(_set_hero_urls(db_settings, urls))
    settings = server_settings(db_settings)
    try:
        # the "seller" is this test's server on 127.0.0.1: private addresses allowed here only
        env = {"IMAGE_PROXY_ALLOW_PRIVATE": "1"}
        with run_server(settings, api_log_dir, env=env) as api:
            r = api.get("/api/v1/images/pan-tau")
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "image/png"
            assert r.content == PNG
            assert r.headers["x-cache"] == "miss"
            assert r.headers["cache-control"] == "public, max-age=86400"
            assert "x-image" not in r.headers
            assert r.headers["x-content-type-options"] == "nosniff"
            etag = r.headers["etag"]
            assert etag.startswith('"') and etag.endswith('"')
            # the bytes are in Redis under the namespace + generation
            redis = Redis.from_url(settings.redis_url)
            try:
                keys = [k.decode() for k in redis.scan_iter(
                    match=f"{settings.cache_namespace}:g*:image:pan-tau")]
                assert len(keys) == 1, keys
                assert redis.ttl(keys[0]) > 86_000
                assert redis.get(keys[0]).endswith(b"image/png\n" + PNG)  # type: ignore[union-attr]
            finally:
                redis.close()

            # a redirect to an http URL is followed
            r = api.get("/api/v1/images/azul")
            assert r.status_code == 200 and r.content == PNG
            assert r.headers["content-type"] == "image/png"

            # too large, not an image, an SVG (could script), a redirect to file:, a 404
            assert_placeholder(api.get("/api/v1/images/dixit"), "D", "Dixit")
            assert_placeholder(api.get("/api/v1/images/splendor"), "S", "Splendor")
            assert_placeholder(api.get("/api/v1/images/bang"), "B", "Bang!")
            assert_placeholder(api.get("/api/v1/images/patchwork"), "P", "Patchwork")
            assert_placeholder(api.get("/api/v1/images/hanabi"), "H", "Hanabi")
            assert_placeholder(api.get("/api/v1/images/carcassonne"), "C", "Carcassonne")
            hits = list(_Handler.hits)
            assert "/to-file" in hits and "/gone.png" in hits

            # the seller's host goes away: the cached bytes are still served
            server.shutdown()
            server.server_close()
            r2 = api.get("/api/v1/images/pan-tau")
            assert r2.status_code == 200
            assert r2.content == PNG
            assert r2.headers["x-cache"] == "hit"
            assert r2.headers["etag"] == etag
            r304 = api.get("/api/v1/images/pan-tau", headers={"If-None-Match": etag})
            assert r304.status_code == 304
            api_metrics = api.get("/metrics").text
            assert 'pricecat_image_fetch_total{outcome="ok"} 2.0' in api_metrics
            assert 'pricecat_image_fetch_total{outcome="too_large"} 1.0' in api_metrics
            assert 'pricecat_image_fetch_total{outcome="refused"} 3.0' in api_metrics
            assert 'pricecat_image_fetch_total{outcome="status"} 1.0' in api_metrics
            assert 'pricecat_image_fetch_total{outcome="error"} 1.0' in api_metrics
            assert _Handler.hits.count("/x.png") == 2  # pan-tau once, azul's redirect once
    finally:
        asyncio.run(_set_hero_urls(db_settings, previous))


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True), ("8.8.8.8", True), ("2606:4700:4700::1111", True),
        ("127.0.0.1", False), ("127.8.9.10", False), ("::1", False), ("0.0.0.0", False),
        ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # shared address space (carrier-grade NAT)
        ("fe80::1%eth0", False), ("fc00::1", False), ("224.0.0.1", False),
        ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True),
        ("240.0.0.1", False), ("255.255.255.255", False), ("localhost", False), ("", False),
    ],
)
def test_public_address_rule(address: str, public: bool) -> None:
    assert images.is_public_address(address) is public


def test_guarded_fetcher_refuses_private_hosts_and_never_connects(
    upstream: tuple[str, http.server.ThreadingHTTPServer],
) -> None:
    """The default fetcher (what `pricecat serve` runs without IMAGE_PROXY_ALLOW_PRIVATE) does
    not reach a live image server on loopback, whatever the URL spells: IP, name, mapped IPv6."""
    base, _server = upstream
    port = base.rsplit(":", 1)[1]
    _Handler.hits.clear()

    async def attempt(url: str) -> str:
        fetcher = images.ImageFetcher()
        try:
            await fetcher.fetch(url)
        except images.UpstreamError as exc:
            return exc.outcome
        finally:
            await fetcher.close()
        return "fetched"

    for url in (f"{base}/x.png", f"http://localhost:{port}/x.png",
                f"http://[::ffff:127.0.0.1]:{port}/x.png", f"http://0.0.0.0:{port}/x.png"):
        assert asyncio.run(attempt(url)) == "refused", url
    assert _Handler.hits == []  # nothing reached the server

    async def allowed() -> tuple[str, bytes]:
        fetcher = images.ImageFetcher(allow_private=True)
        try:
            return await fetcher.fetch(f"{base}/x.png")
        finally:
            await fetcher.close()

    assert asyncio.run(allowed()) == ("image/png", PNG)  # the same URL, allowed: fetched


def test_serve_refuses_private_image_hosts_by_default(
    db_settings: Settings, api_log_dir: Path,
    upstream: tuple[str, http.server.ThreadingHTTPServer],
) -> None:
    """A scraped hero_image_url pointing at this machine gets the placeholder from a plain
    `pricecat serve`; the upstream sees no request."""
    base, _server = upstream
    _Handler.hits.clear()
    previous = asyncio.run(_set_hero_urls(db_settings, {"pan-tau": f"{base}/x.png"}))
    try:
        with run_server(server_settings(db_settings), api_log_dir) as api:
            assert_placeholder(api.get("/api/v1/images/pan-tau"), "PK", "Pan_Tau&#x27;s klobouk")
            assert 'pricecat_image_fetch_total{outcome="refused"} 1.0' in api.get("/metrics").text
    finally:
        asyncio.run(_set_hero_urls(db_settings, previous))
    assert _Handler.hits == []
