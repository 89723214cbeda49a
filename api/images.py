"""Same-origin image proxy: the browser loads product images from ``/api/v1/images/{slug}``,
never from the sellers' hosts.

Safety: the proxy only fetches the URL the read model holds for the slug (looked up by slug; a
client never supplies a URL), only ``http``/``https`` (redirects too, at most
``MAX_REDIRECTS``), and only from public addresses: ``PublicOnlyBackend`` resolves each host
itself, refuses loopback, private, link-local (cloud metadata), shared, multicast and reserved
addresses, and connects to the address it checked (no second lookup, so no DNS rebinding). A
scraped URL, or a redirect, pointing at ``localhost:6379`` or ``169.254.169.254`` gets the
placeholder (``IMAGE_PROXY_ALLOW_PRIVATE=1`` lifts this for tests and local mirrors). Short
timeouts (connect 2 s, 5 s for the whole fetch), at most ``MAX_BYTES`` (streamed; larger
bodies are dropped), and only raster image types (SVG can carry script, so an upstream SVG is
refused). Every answer carries ``nosniff`` and a sandboxing
CSP. The URL is looked up on a pooled connection that is released before the fetch starts.

Caching: the fetched bytes (with their content type) go through ``api.cache`` under
``<ns>:g<gen>:image:{slug}`` (TTL ``TTL_IMAGE``, 1 day; ``Cache-Control: public,
max-age=86400``, strong ETag). No image in the read model, or a failed/refused upstream fetch:
a generated placeholder SVG (the product's initials) with ``max-age=300`` and ``X-Image:
placeholder``. A failed fetch is not cached in Redis; it is remembered per worker for
``FAILURE_MEMO_SECONDS`` so a page full of unreachable images doesn't re-fetch them all.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

import httpcore
import httpx
from prometheus_client import Counter

from api.cache import Cache
from api.db import Database
from api.errors import NotFound
from api.lru import LRU
from api.queries import images

TTL_IMAGE = 86_400
PLACEHOLDER_MAX_AGE = 300
FAILURE_MEMO_SECONDS = 60.0
MAX_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 3
CONNECT_TIMEOUT = 2.0
TOTAL_TIMEOUT = 5.0
MAX_CONCURRENT_FETCHES = 8
#: raster types only: an SVG from a seller could carry script
ALLOWED_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"})
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
}
_PLACEHOLDER = b"placeholder"

FETCHES = Counter(
    "pricecat_image_fetch_total",
    "Upstream image fetches of the image proxy, by outcome.",
    ["outcome"],
)


class UpstreamError(Exception):
    """The upstream image could not be used; ``outcome`` labels the metric."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class _FetchFailed(Exception):
    """Raised by the cache loader so that a failed fetch is not cached."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class NonPublicAddress(httpcore.ConnectError):
    """The upstream host resolves to an address the proxy must not reach."""


def is_public_address(address: str) -> bool:
    """True for globally routable unicast addresses (an IPv4-mapped IPv6 address counts as its
    IPv4 address); False for loopback, private, link-local, shared (100.64/10), multicast,
    reserved and unspecified ones, and for anything that is not an IP address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to public addresses: it resolves the host,
    refuses it when any of its addresses is not public, and connects to a checked address (TLS
    still verifies the certificate against the host name, which httpcore passes as SNI)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        refused = [a for a in addresses if not is_public_address(a)]
        if not addresses or refused:
            raise NonPublicAddress(f"{host} resolves to a non-public address ({refused[:1]})")
        return await self._inner.connect_tcp(
            addresses[0], port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise NonPublicAddress("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _public_only_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    pool = transport._pool  # httpx keeps the httpcore pool here (pinned in requirements.lock;
    # tests/api/test_images.py proves the guard is in the path)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpx changed its transport internals: cannot guard image fetches")
    pool._network_backend = PublicOnlyBackend(pool._network_backend)
    return transport


class ImageFetcher:
    """One httpx client per worker (created in before_server_start, closed after stop).
    ``allow_private``: also fetch from loopback/private addresses (tests, local mirrors)."""

    def __init__(
        self, client: httpx.AsyncClient | None = None, *, allow_private: bool = False
    ) -> None:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=8)
        self.client = client or httpx.AsyncClient(
            follow_redirects=False,  # followed by hand: each hop must be http(s)
            trust_env=False,  # no proxies or netrc from the environment
            timeout=httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
            limits=limits,
            transport=None if allow_private else _public_only_transport(limits),
            headers={
                "User-Agent": "pricecat-image-proxy/1.0",
                "Accept": "image/avif,image/webp,image/png,image/jpeg,image/gif;q=0.9",
            },
        )
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)

    async def close(self) -> None:
        await self.client.aclose()

    async def fetch(self, url: str) -> tuple[str, bytes]:
        """(content type, bytes) of the image at ``url``, else UpstreamError."""
        try:
            async with self._slots, asyncio.timeout(TOTAL_TIMEOUT):
                result = await self._fetch(url)
        except UpstreamError as exc:
            FETCHES.labels(exc.outcome).inc()
            raise
        except TimeoutError as exc:
            FETCHES.labels("timeout").inc()
            raise UpstreamError("timeout", f"fetching {url} timed out") from exc
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            if isinstance(exc.__cause__, NonPublicAddress):
                FETCHES.labels("refused").inc()
                raise UpstreamError("refused", f"fetching {url} refused: {exc}") from exc
            FETCHES.labels("error").inc()
            raise UpstreamError("error", f"fetching {url} failed: {exc}") from exc
        FETCHES.labels("ok").inc()
        return result

    async def _fetch(self, url: str) -> tuple[str, bytes]:
        target = httpx.URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            if target.scheme not in ("http", "https") or not target.host:
                raise UpstreamError("refused", f"not an http(s) URL: {target}")
            async with self.client.stream("GET", target) as response:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    target = response.url.join(location)
                    continue
                if response.status_code != 200:
                    raise UpstreamError("status", f"HTTP {response.status_code} from {target}")
                content_type = (
                    response.headers.get("content-type", "").split(";")[0].strip().lower()
                )
                if content_type not in ALLOWED_TYPES:
                    raise UpstreamError("refused", f"content type {content_type!r} from {target}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_BYTES:
                    raise UpstreamError("too_large", f"{declared} bytes from {target}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise UpstreamError("too_large", f"more than {MAX_BYTES} bytes")
                    chunks.append(chunk)
                if size == 0:
                    raise UpstreamError("refused", f"empty body from {target}")
                return content_type, b"".join(chunks)
        raise UpstreamError("refused", f"more than {MAX_REDIRECTS} redirects")


_WORD_START = re.compile(r"[^\W\d_]")


def initials(name: str) -> str:
    """First letters of the first two words that start with a letter (as the web UI does)."""
    letters = [w[0].upper() for w in name.split() if _WORD_START.match(w)]
    return "".join(letters[:2]) or "?"


def placeholder_svg(name: str) -> bytes:
    """A small neutral SVG with the product's initials (every text XML-escaped)."""
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" '
        'viewBox="0 0 400 400" role="img">'
        f"<title>{escape(name)}</title>"
        '<rect width="400" height="400" fill="#eceff1"/>'
        '<text x="200" y="200" dy=".35em" font-family="sans-serif" font-size="120" '
        f'font-weight="600" fill="#78909c" text-anchor="middle">{escape(initials(name))}</text>'
        "</svg>"
    ).encode()


@dataclass(frozen=True)
class ImageAnswer:
    status: int  # 200, or 404 (body: the JSON error)
    body: bytes
    content_type: str
    max_age: int
    etag: str
    placeholder: bool
    x_cache: str


#: per worker: (namespace, slug) -> product name of a recently failed fetch
_FAILURES: LRU[tuple[str, str], str] = LRU(4096)


def _placeholder_answer(name: str, x_cache: str) -> ImageAnswer:
    body = placeholder_svg(name)
    etag = '"p-' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    return ImageAnswer(200, body, "image/svg+xml", PLACEHOLDER_MAX_AGE, etag, True, x_cache)


async def hero_image(cache: Cache, db: Database, fetcher: ImageFetcher, slug: str) -> ImageAnswer:
    """The slug's hero image (bytes cached 1 day), its placeholder, or a 404 answer."""
    memo_key = (cache.namespace, slug)
    failed_name = _FAILURES.get(memo_key)
    if failed_name is not None:
        return _placeholder_answer(failed_name, "hit")

    async def load() -> tuple[int, bytes]:
        # the connection goes back to the pool before the (slow) upstream fetch starts
        source = await db.session("image_url", lambda s: images.hero_image(s, slug))
        if source is None:
            return NotFound.product(slug).answer()
        name = source.name or slug
        if source.url is None:
            return 200, _PLACEHOLDER + b"\n" + name.encode()
        try:
            content_type, data = await fetcher.fetch(source.url)
        except UpstreamError as exc:
            raise _FetchFailed(name) from exc
        return 200, content_type.encode() + b"\n" + data

    try:
        outcome = await cache.get_or_load("image", f"image:{slug}", TTL_IMAGE, load)
    except _FetchFailed as failed:
        _FAILURES.put(memo_key, failed.name, ttl=FAILURE_MEMO_SECONDS)
        return _placeholder_answer(failed.name, "miss")
    entry = outcome.entry
    if entry.status != 200:
        return ImageAnswer(
            entry.status, entry.body, "application/json", 0, "", False, outcome.result
        )
    kind, _, payload = entry.body.partition(b"\n")
    if kind == _PLACEHOLDER:
        return _placeholder_answer(payload.decode(), outcome.result)
    return ImageAnswer(
        200, payload, kind.decode(), TTL_IMAGE, entry.etag, False, outcome.result
    )
