"""GET /api/v1/meta/categories, GET /api/v1/meta/generation and GET /api/v1/snapshots/recent"""

from __future__ import annotations

import time
import weakref

import orjson
from pydantic import BaseModel, Field
from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api import reads, schemas
from api.cache import Cache, GenerationUnknown
from api.db import Database
from api.errors import ServiceUnavailable
from api.http import cached_response
from api.params import ParseMemo, parse_none, parse_recent
from api.routes import inject
from api.routes.docs import (
    CACHE_HEADERS,
    POLICY,
    apply,
    error_responses,
    integer,
    json_of,
)

_parse_recent = ParseMemo(parse_recent)


@apply(
    openapi.summary("Every category with its product count"),
    openapi.description(
        "Ordered by count desc, then name. Takes no parameters." + POLICY + CACHE_HEADERS
        + " Cached 600 s."
    ),
    openapi.tag("meta"),
    openapi.response(200, json_of(schemas.CategoryList), "Categories"),
    *error_responses(400),
)
@inject
async def get_categories(request: Request, db: Database, cache: Cache) -> HTTPResponse:
    parse_none(request.args)
    return cached_response(request, await reads.category_list(cache, db))


@apply(
    openapi.summary("Newest raw snapshots with the previous price"),
    openapi.description(
        "Newest first (scraped_at desc, then id desc). previous_price is the same seller's "
        "previous snapshot price for the slug, for discount calculations." + POLICY
        + CACHE_HEADERS + " Cached 120 s."
    ),
    openapi.tag("snapshots"),
    openapi.parameter(
        "limit", integer(minimum=1, maximum=500, default=100), "query", allowEmptyValue=True,
        description="Number of snapshots",
    ),
    openapi.response(200, json_of(schemas.RecentList), "Snapshots, newest first"),
    *error_responses(400),
)
@inject
async def get_recent(request: Request, db: Database, cache: Cache) -> HTTPResponse:
    limit = _parse_recent(request.query_string, lambda: request.args)
    return cached_response(request, await reads.recent(cache, db, limit))


#: Seconds beyond the workers' generation check interval before a generation becomes the
#: cache generation: covers a generation read that started before the publish and ended after.
SETTLE_MARGIN_SECONDS = 0.5
#: How long Redis keeps the time a generation was first reported (shared by every worker).
FIRST_SEEN_TTL_SECONDS = 7 * 86400


class Generation(BaseModel):
    generation: int = Field(description="The published build this worker answers from now")
    cache_generation: int | None = Field(
        description="The newest build that every API worker on this database has been answering "
        "from for at least the generation check interval + 0.5 s: an answer asked now is of this "
        "build or a newer one, so a shared cache (nginx) may key long-lived entries by it. "
        "null while no such build is known yet (do not cache)."
    )


class _Settler:
    """Per worker: when each generation was first reported (the earliest report by any worker,
    shared through Redis) and the newest generation that has settled."""

    def __init__(self) -> None:
        self.first_seen: dict[int, float] = {}
        self.settled: int | None = None

    async def first(self, cache: Cache, generation: int) -> float:
        known = self.first_seen.get(generation)
        if known is not None:
            return known
        now = time.time()
        key = f"{cache.namespace}:generation-first-seen:{generation}"
        try:
            # SET NX GET: the first reporter's time wins, every later worker reads it back
            old = await cache.redis.set(key, repr(now), nx=True, get=True,
                                        ex=FIRST_SEEN_TTL_SECONDS)
        except Exception:  # noqa: BLE001 - Redis down: this worker's own (later) time is safe
            old = None
        first = float(old) if old is not None else now
        if len(self.first_seen) > 64:
            self.first_seen.clear()
        self.first_seen[generation] = first
        return first


_settlers: weakref.WeakKeyDictionary[Cache, _Settler] = weakref.WeakKeyDictionary()


@apply(
    openapi.summary("The data generation (published build id) and the cache generation"),
    openapi.description(
        "generation: the build this worker answers from (its cached read, refreshed every "
        "generation check interval; no database query here). cache_generation: the newest "
        "build every worker has had for the check interval + 0.5 s, or null. Headers "
        "X-Pricecat-Generation and X-Pricecat-Cache-Generation (absent when null) carry the "
        "same values; Cache-Control: no-store; X-Accel-Expires: @<current unix second> (nginx "
        "keeps the answer until that second ends). nginx polls X-Pricecat-Generation to key its "
        "micro-cache (deploy/nginx). Takes no parameters." + POLICY
    ),
    openapi.tag("meta"),
    openapi.response(200, json_of(Generation), "The generations"),
    *error_responses(400),
)
@inject
async def get_generation(request: Request, cache: Cache) -> HTTPResponse:
    parse_none(request.args)
    try:
        generation = await cache.generation()
    except GenerationUnknown as exc:
        raise ServiceUnavailable("No data generation known yet",
                                 code="database_unavailable") from exc
    settler = _settlers.get(cache)
    if settler is None:
        settler = _settlers[cache] = _Settler()
    first = await settler.first(cache, generation)
    now = time.time()
    hold = cache.options.generation_check_seconds + SETTLE_MARGIN_SECONDS
    settled_key = f"{cache.namespace}:generation-settled"
    if now - first >= hold:
        if settler.settled != generation:
            settler.settled = generation
            try:  # for workers that start later, inside a generation's hold
                await cache.redis.set(settled_key, str(generation), ex=FIRST_SEEN_TTL_SECONDS)
            except Exception:  # noqa: BLE001,S110 - Redis down: only a later worker's hint
                pass
    elif settler.settled is None:
        # a worker that started inside the hold: the build another worker settled (older than
        # this one, so safe as a key), else none (nginx passes requests through uncached)
        try:
            raw = await cache.redis.get(settled_key)
        except Exception:  # noqa: BLE001 - Redis down
            raw = None
        if raw is not None and int(raw) <= generation:
            settler.settled = int(raw)
    # for nginx: the answer may be kept until the end of this second (it compares whole seconds,
    # so a relative "1 s" would last up to 2 s); clients see no-store
    headers = {"Cache-Control": "no-store", "X-Pricecat-Generation": str(generation),
               "X-Accel-Expires": f"@{int(now)}"}
    if settler.settled is not None:
        headers["X-Pricecat-Cache-Generation"] = str(settler.settled)
    body = orjson.dumps({"generation": generation, "cache_generation": settler.settled})
    return HTTPResponse(body, headers=headers, content_type="application/json")


def blueprint() -> Blueprint:
    bp = Blueprint("meta", url_prefix="/api/v1")
    bp.add_route(get_categories, "/meta/categories", methods=["GET"], name="categories")
    bp.add_route(get_generation, "/meta/generation", methods=["GET"], name="generation")
    bp.add_route(get_recent, "/snapshots/recent", methods=["GET"], name="recent")
    return bp
