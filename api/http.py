"""HTTP concerns shared by every route: cached JSON responses (strong ETag, 304, gzip,
Cache-Control), CORS for configured origins, gzip of other large bodies, a per-client rate limit.

ETags: strong, a hash of the JSON body. The gzip representation has its own strong tag (same hash
plus ``-gzip``), as RFC 9110 requires distinct strong validators for distinct bytes; either tag
in ``If-None-Match`` yields 304 since both describe the same JSON document. ``etag_matches`` is
the one If-None-Match matcher (cached JSON, the Atom feed, the image proxy).

Fast path (``ResponseMemo``): a GET answered from the cache remembers, per worker, which cache
key its raw URL (path + query string, as received) resolved to. The next GET of the same raw URL
is answered from that key's in-process entry before Sanic routes it (``ApiSanic.handle_request``:
no routing, no middleware, no signals; the rate limit, request metrics and CORS are applied by
the fast path itself), with the headers built once per entry: no parsing, no validation, no key
building. It only answers what the full path would answer the same way
(``Cache.fresh_memory_entry``: current generation, no generation re-read due, entry fresh);
otherwise the request takes the full path. A URL that fails validation never reaches the cache,
so it is never remembered.
"""

from __future__ import annotations

import gzip
import math
import time
from asyncio import CancelledError
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import BadURL

from api import metrics
from api.cache import GZIP_MIN_BYTES, Cache, Entry, Outcome
from api.errors import RateLimited
from api.lru import LRU

COMPRESSIBLE = ("application/json", "text/", "application/javascript", "image/svg+xml")
EXPOSED_HEADERS = "ETag, X-Cache, Retry-After"
#: max-age of an answer that is not fresh (served while it is revalidated, or the previous
#: generation's entry): downstream caches keep it seconds, never a full TTL
STALE_MAX_AGE = 5
#: gzip of immutable hashed /assets/ files, compressed once per worker
_STATIC_GZIP: LRU[tuple[str, int, str], bytes] = LRU(256)
#: Accept-Encoding header value -> gzip accepted (clients send a handful of distinct values)
_ACCEPTS_GZIP: LRU[str, bool] = LRU(256)


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


#: request -> its answer, or None (then Sanic routes the request as usual); may raise (the error
#: is answered as if the request middleware had raised it)
FastPath = Callable[[Request], HTTPResponse | None]


class ApiSanic(Sanic):  # type: ignore[type-arg]
    """Sanic, with a fast path tried before its own request handling: a GET the fast path
    answers (``fast_path``, set by ``api.server.create_app``: the raw-URL response memo) is sent
    as it is, with no routing, no middleware and no signals; any other request, or one the fast
    path declines, takes ``Sanic.handle_request``."""

    __slots__ = ("fast_path",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_path: FastPath | None = None

    async def handle_request(self, request: Request) -> None:
        fast = self.fast_path
        if fast is not None:
            try:
                answer = fast(request)
                if answer is not None:
                    # what Request.respond does (bind the response to the connection), minus
                    # the response middleware: the fast path did its work already
                    stream = request.stream
                    response = answer if stream is None else stream.respond(answer)
                    request.responded = True
                    await response.send(end_stream=True)
                    return
            except CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - answered as Sanic answers a middleware's
                await self.handle_exception(request, exc, run_middleware=False)
                return
        await super().handle_request(request)


def _parse_accepts_gzip(header: str) -> bool:
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


def accepts_gzip(request: Request) -> bool:
    header = request.headers.get("accept-encoding")
    if not header:
        return False
    found = _ACCEPTS_GZIP.get(header)
    if found is None:
        found = _parse_accepts_gzip(header)
        _ACCEPTS_GZIP.put(header, found)
    return found


def etag_matches(header: str | None, *etags: str) -> bool:
    """Whether an ``If-None-Match`` value matches one of ``etags`` (RFC 9110 13.1.2: weak
    comparison, so ``W/"x"`` matches ``"x"``): a comma-separated list of entity tags, quoted or
    (leniently) bare, or ``*`` (any current representation: true when there is an ETag)."""
    if not header or not any(etags):
        return False
    header = header.strip()
    if header == "*":
        return True
    wanted = {tag.strip('"') for tag in etags if tag}
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') in wanted:
            return True
    return False


def gzip_etag(etag: str) -> str:
    return etag[:-1] + '-gzip"' if etag.endswith('"') else etag + "-gzip"


#: results whose entry is the one stored under the answered generation's key (a "stale" answer
#: may be the previous generation's entry: it carries no generation header)
_OWN_GENERATION = frozenset(("hit", "miss", "bypass"))


def _headers(
    entry: Entry, result: str, fresh: bool, use_gzip: bool, generation: int | None
) -> dict[str, str]:
    """The response headers of ``entry`` for one variant, built once per entry (an entry lives
    under one generation's key, so ``generation`` is the same for every call of a variant)."""
    variant = (result, fresh, use_gzip)
    headers = entry.headers.get(variant)
    if headers is None:
        headers = {"X-Cache": result, "Vary": "Accept-Encoding"}
        if generation is not None and result in _OWN_GENERATION:
            # the build this answer's data is from: nginx stores an answer only under the
            # generation it names (deploy/nginx/micro-cache.conf)
            headers["X-Pricecat-Generation"] = str(generation)
        if entry.status != 200:
            headers["Cache-Control"] = "no-store"
        else:
            headers["Cache-Control"] = f"public, max-age={entry.ttl if fresh else STALE_MAX_AGE}"
            headers["ETag"] = gzip_etag(entry.etag) if use_gzip else entry.etag
            if use_gzip:
                headers["Content-Encoding"] = "gzip"
        entry.headers[variant] = headers
    return headers


def respond(
    request: Request, entry: Entry, result: str, fresh: bool, generation: int | None = None
) -> HTTPResponse:
    """The HTTP answer of a cached entry (gzip, ETag / 304, Cache-Control, X-Cache,
    X-Pricecat-Generation)."""
    if entry.status != 200:
        return HTTPResponse(
            entry.body,
            status=entry.status,
            headers=_headers(entry, result, fresh, False, generation),
            content_type="application/json",
        )
    use_gzip = len(entry.body) > GZIP_MIN_BYTES and accepts_gzip(request)
    headers = _headers(entry, result, fresh, use_gzip, generation)
    inm = request.headers.get("if-none-match")
    if inm and etag_matches(inm, entry.etag, gzip_etag(entry.etag)):
        return HTTPResponse(status=304, headers=headers)
    return HTTPResponse(
        entry.gzipped() if use_gzip else entry.body,
        status=200,
        headers=headers,
        content_type="application/json",
    )


def cached_response(request: Request, outcome: Outcome) -> HTTPResponse:
    ctx = request.ctx
    ctx.cached = True  # the response middleware leaves gzip to us
    ctx.outcome = outcome  # ... and remembers the raw URL's key (ResponseMemo)
    entry = outcome.entry
    fresh = outcome.result != "stale" and entry.is_fresh()
    return respond(request, entry, outcome.result, fresh, outcome.generation)


class _WireHeaders(HTTPResponse):
    """A fast-path answer whose cache headers were encoded once per entry (``wire``); Sanic adds
    and encodes only its own (content-length, connection) at send time."""

    __slots__ = ("_wire",)

    def __init__(self, body: bytes | None, status: int, wire: list[tuple[bytes, bytes]]) -> None:
        super().__init__(body, status=status)
        self._wire = wire

    @property
    def processed_headers(self) -> list[tuple[bytes, bytes]]:  # type: ignore[override]
        sanitize = self._sanitize_header_value
        return self._wire + [
            (sanitize(name).encode("ascii"), sanitize(f"{value}").encode(errors="surrogateescape"))
            for name, value in self.headers.items()
        ]


def _wire(entry: Entry, use_gzip: bool, status: int, generation: int) -> list[tuple[bytes, bytes]]:
    """The encoded headers of a fresh hit (status 200/304/404), built once per entry."""
    variant = ("wire", use_gzip, status)
    wire = entry.wire.get(variant)
    if wire is None:
        headers = dict(_headers(entry, "hit", True, use_gzip, generation))
        if status != 304:
            headers["Content-Type"] = "application/json"
        wire = [(k.lower().encode("ascii"), v.encode("ascii")) for k, v in headers.items()]
        entry.wire[variant] = wire
    return wire


def _fast_respond(request: Request, entry: Entry, generation: int) -> HTTPResponse:
    """``respond(request, entry, "hit", True, generation)`` with the encoded headers of the
    entry."""
    if entry.status != 200:
        return _WireHeaders(entry.body, entry.status, _wire(entry, False, entry.status, generation))
    use_gzip = len(entry.body) > GZIP_MIN_BYTES and accepts_gzip(request)
    inm = request.headers.get("if-none-match")
    if inm and etag_matches(inm, entry.etag, gzip_etag(entry.etag)):
        return _WireHeaders(None, 304, _wire(entry, use_gzip, 304, generation))
    return _WireHeaders(
        entry.gzipped() if use_gzip else entry.body, 200, _wire(entry, use_gzip, 200, generation)
    )


class ResponseMemo:
    """Per worker: raw URL of a GET -> what it was answered under (module docstring: fast
    path): the generation, the cache key, the cache-lookup metric, the matched route (for the
    request metrics and error handling) and whether the rate limit applies (an /api/ path)."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._keys: LRU[bytes, tuple[int, str, Any, Any, bool]] = LRU(max_entries)

    def remember(self, request: Request, outcome: Outcome) -> None:
        if outcome.generation is None or not outcome.key or request.method != "GET":
            return
        counter = metrics.child(metrics.CACHE, outcome.endpoint, "hit", "memory")
        self._keys.put(
            request.raw_url,
            (
                outcome.generation,
                outcome.key,
                counter,
                request.route,
                request.path.startswith("/api/"),
            ),
        )

    def lookup(self, request: Request, cache: Cache) -> tuple[Entry, int, Any, Any, bool] | None:
        """(entry, generation, cache-lookup metric, route, rate-limited) of a remembered GET
        whose in-process entry answers as it is, else None (then the full path answers)."""
        found = self._keys.get(request.raw_url)
        if found is None or request.method != "GET":
            return None
        generation, key, counter, route, limited = found
        entry = cache.fresh_memory_entry(generation, key)
        if entry is None:
            return None
        return entry, generation, counter, route, limited

    @staticmethod
    def respond(request: Request, entry: Entry, generation: int) -> HTTPResponse:
        """The fast-path answer of ``entry`` (a fresh in-process hit)."""
        request.ctx.cached = True
        if "origin" in request.headers:  # CORS headers are added to response.headers
            return respond(request, entry, "hit", True, generation)
        return _fast_respond(request, entry, generation)


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
            _STATIC_GZIP.put(memo_key, compressed)
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
        #: client -> (tokens, last refill); the least recently seen clients are dropped first
        self._buckets: LRU[str, tuple[float, float]] = LRU(max_clients)

    def check(self, client: str) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.get(client) or (self.capacity, now)
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets.put(client, (tokens, now))
            retry = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise RateLimited(
                "Too many requests; slow down",
                details={"limit_per_minute": int(self.capacity), "retry_after_seconds": retry},
                headers={"Retry-After": str(retry)},
            )
        self._buckets.put(client, (tokens - 1.0, now))
