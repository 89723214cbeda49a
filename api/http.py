"""HTTP concerns shared by every route: cached JSON responses (strong ETag, 304, gzip,
Cache-Control), CORS for configured origins, gzip of other large bodies, a per-client rate limit.

ETags: strong, a hash of the JSON body. The gzip representation has its own strong tag (same hash
plus ``-gzip``), as RFC 9110 requires distinct strong validators for distinct bytes; either tag
in ``If-None-Match`` yields 304 since both describe the same JSON document.
"""

from __future__ import annotations

import gzip
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sanic import HTTPResponse, Request
from sanic.exceptions import BadURL

from api.cache import GZIP_MIN_BYTES, Entry, Outcome
from api.errors import RateLimited

COMPRESSIBLE = ("application/json", "text/", "application/javascript", "image/svg+xml")
EXPOSED_HEADERS = "ETag, X-Cache, Retry-After"
#: max-age of an answer that is not fresh (served while it is revalidated, or the previous
#: generation's entry): downstream caches keep it seconds, never a full TTL
STALE_MAX_AGE = 5
_STATIC_GZIP: dict[tuple[str, int, str], bytes] = {}


class ApiRequest(Request):
    """Sanic's Request, able to answer a request line httptools rejects (a NUL or control byte
    in the URL): Sanic then builds a stand-in request with the same bad URL to render the 400,
    that raises again and the connection is dropped without an answer. The stand-in
    (method ``NONE``) falls back to ``/``, so the client gets the JSON 400."""

    def __init__(self, url_bytes: bytes, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(url_bytes, *args, **kwargs)
        except BadURL:
            if kwargs.get("method") != "NONE":
                raise
            super().__init__(b"/", *args, **kwargs)


def accepts_gzip(request: Request) -> bool:
    header = request.headers.get("accept-encoding", "")
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            if q.startswith("q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    bare = etag.strip('"')
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        if tag in (bare, bare + "-gzip"):
            return True
    return False


def cached_response(request: Request, outcome: Outcome) -> HTTPResponse:
    entry: Entry = outcome.entry
    request.ctx.cached = True  # the response middleware leaves gzip to us
    headers = {"X-Cache": outcome.result, "Vary": "Accept-Encoding"}
    if entry.status != 200:
        headers["Cache-Control"] = "no-store"
        return HTTPResponse(
            entry.body, status=entry.status, headers=headers, content_type="application/json"
        )
    fresh = outcome.result != "stale" and entry.is_fresh()
    headers["Cache-Control"] = f"public, max-age={entry.ttl if fresh else STALE_MAX_AGE}"
    use_gzip = len(entry.body) > GZIP_MIN_BYTES and accepts_gzip(request)
    etag = entry.etag if not use_gzip else entry.etag[:-1] + '-gzip"'
    headers["ETag"] = etag
    if _etag_matches(request, entry.etag):
        return HTTPResponse(status=304, headers=headers)
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
        return HTTPResponse(
            entry.gzipped(), status=200, headers=headers, content_type="application/json"
        )
    return HTTPResponse(entry.body, status=200, headers=headers, content_type="application/json")


def gzip_response(request: Request, response: HTTPResponse) -> None:
    """Compress a large text-like body in place when the client accepts gzip (non-cached routes)."""
    body = response.body
    if (
        not body
        or len(body) <= GZIP_MIN_BYTES
        or response.status < 200
        or response.status in (204, 304)
        or "content-encoding" in response.headers
        or not any((response.content_type or "").startswith(c) for c in COMPRESSIBLE)
        or not accepts_gzip(request)
    ):
        return
    memo_key = None
    if request.path.startswith("/assets/"):  # immutable hashed files: compress once
        memo_key = (request.path, len(body), response.headers.get("last-modified", ""))
        compressed = _STATIC_GZIP.get(memo_key)
        if compressed is None:
            compressed = gzip.compress(body, compresslevel=6, mtime=0)
            if len(_STATIC_GZIP) < 256:
                _STATIC_GZIP[memo_key] = compressed
        response.body = compressed
    else:
        response.body = gzip.compress(body, compresslevel=5, mtime=0)
    response.headers["Content-Encoding"] = "gzip"
    response.headers["Content-Length"] = str(len(response.body))
    vary = response.headers.get("Vary")
    response.headers["Vary"] = "Accept-Encoding" if not vary else vary + ", Accept-Encoding"
    etag = response.headers.get("ETag")
    if etag and etag.endswith('"') and not etag.endswith('-gzip"'):
        response.headers["ETag"] = etag[:-1] + '-gzip"'


@dataclass(frozen=True)
class Cors:
    origins: frozenset[str]

    def preflight(self, request: Request) -> HTTPResponse | None:
        if request.method != "OPTIONS" or "access-control-request-method" not in request.headers:
            return None
        headers = {"Vary": "Origin"}
        origin = request.headers.get("origin")
        if origin and origin in self.origins:
            headers.update(
                {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                    "Access-Control-Allow-Headers": request.headers.get(
                        "access-control-request-headers", "If-None-Match"
                    ),
                    "Access-Control-Max-Age": "600",
                }
            )
        return HTTPResponse(status=204, headers=headers)

    def decorate(self, request: Request, response: HTTPResponse) -> None:
        origin = request.headers.get("origin")
        if not origin:
            return
        vary = response.headers.get("Vary")
        if not vary or "origin" not in vary.lower():
            response.headers["Vary"] = "Origin" if not vary else vary + ", Origin"
        if origin in self.origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS


class RateLimiter:
    """Token bucket per client address, per worker process (so the effective limit across N
    workers is at most N x the setting; a load balancer with sticky clients keeps it exact)."""

    def __init__(self, per_minute: int, max_clients: int = 100_000) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, client: str) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            retry = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise RateLimited(
                "Too many requests; slow down",
                details={"limit_per_minute": int(self.capacity), "retry_after_seconds": retry},
                headers={"Retry-After": str(retry)},
            )
        self._buckets[client] = (tokens - 1.0, now)
        self._buckets.move_to_end(client)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
