"""Per-endpoint read-through: the cache key (every argument), the TTL, and the loader that runs
the queries and renders the JSON body. Routes call these; these call api/queries.

Each loader runs all statements of its miss on one pooled connection (``Database.session``):
a miss queues for the pool once. Each passes the generation of the key it fills
(``LOAD_GENERATION``), so the session proves its statements read that one build (a publish in
between raises ``GenerationMoved`` and the cache loads again under the new generation). Each
passes ``db.saturated`` so that, while the pool is saturated, a miss is answered from the
previous generation's entry (see api/cache.py).
Catalog totals are memoized per generation and filter set
(``_TOTALS``), so another page or sort of known filters runs only the page query."""

from __future__ import annotations

from collections.abc import Hashable

from api.cache import LOAD_GENERATION, Cache, Outcome
from api.db import Database
from api.encoding import dumps
from api.errors import NotFound
from api.lru import LRU
from api.params import CatalogQuery, SuggestQuery
from api.queries import catalog, categories, products, snapshots, suggest

TTL_CATALOG = 120
TTL_PRODUCT = 300
TTL_SUGGEST = 60
TTL_CATEGORIES = 600
TTL_RECENT = 120


#: (total, total_estimate) per data generation and filter set (sort and page excluded), per
#: worker: the pages and sort orders of one filter set share them, so their misses run the page
#: query only. Entries of older generations are never read again (they age out of the LRU).
_TOTALS: LRU[Hashable, tuple[int, int]] = LRU(4096)


async def catalog_page(cache: Cache, db: Database, query: CatalogQuery) -> Outcome:
    f = query.filters
    key = f"catalog:{f.filters_hash()}:{query.page}:{query.page_size}"

    async def load() -> tuple[int, bytes]:
        offset = (query.page - 1) * query.page_size
        generation = LOAD_GENERATION.get()  # the generation of the key being filled
        memo_key = (
            None  # no generation known (Postgres unreachable at start): count every time
            if generation is None
            else (cache.namespace, generation, f.availability, f.min_price, f.max_price,
                  f.categories, f.q)
        )
        known = _TOTALS.get(memo_key) if memo_key is not None else None
        listing = await db.session(
            "catalog",
            lambda s: catalog.catalog_listing(s, f, query.page_size, offset, known),
            generation,
        )
        if memo_key is not None:
            _TOTALS.put(memo_key, (listing["total"], listing["total_estimate"]))
        body = {
            "items": listing["items"],
            "page": query.page,
            "page_size": query.page_size,
            "total": listing["total"],
            "total_estimate": listing["total_estimate"],
        }
        return 200, dumps(body)

    return await cache.get_or_load("catalog", key, TTL_CATALOG, load, db.saturated)


async def product(cache: Cache, db: Database, slug: str) -> Outcome:
    async def load() -> tuple[int, bytes]:
        found = await db.session(
            "product", lambda s: products.product(s, slug), LOAD_GENERATION.get()
        )
        if found is None:
            return NotFound.product(slug).answer()
        return 200, dumps(found)

    return await cache.get_or_load("product", f"product:{slug}", TTL_PRODUCT, load, db.saturated)


async def suggestions(cache: Cache, db: Database, query: SuggestQuery) -> Outcome:
    key = f"suggest:{query.q}:{query.availability}:{query.limit}"

    async def load() -> tuple[int, bytes]:
        items = await db.session(
            "suggest", lambda s: suggest.suggest(s, query), LOAD_GENERATION.get()
        )
        return 200, dumps({"items": items})

    return await cache.get_or_load("suggest", key, TTL_SUGGEST, load, db.saturated)


async def category_list(cache: Cache, db: Database) -> Outcome:
    async def load() -> tuple[int, bytes]:
        items = await db.session(
            "categories", lambda s: categories.categories(s), LOAD_GENERATION.get()
        )
        return 200, dumps({"items": items})

    return await cache.get_or_load(
        "categories", "categories:list", TTL_CATEGORIES, load, db.saturated
    )


async def recent(cache: Cache, db: Database, limit: int) -> Outcome:
    async def load() -> tuple[int, bytes]:
        items = await db.session(
            "recent", lambda s: snapshots.recent_snapshots(s, limit), LOAD_GENERATION.get()
        )
        return 200, dumps({"items": items})

    return await cache.get_or_load("recent", f"recent:{limit}", TTL_RECENT, load, db.saturated)


# --- deals (issue 13) ---------------------------------------------------------------------------

from api import atom  # noqa: E402 - kept with the deals reads (the top belongs to the lead)
from api.queries import deals  # noqa: E402

TTL_DEALS = 300
#: the Atom feed lists at most this many deals (highest discount first)
FEED_MAX_ENTRIES = 200


async def deals_page(
    cache: Cache, db: Database, f: deals.DealFilters, page: int, page_size: int
) -> Outcome:
    key = f"deals:page:{f.key()}:{page}:{page_size}"

    async def load() -> tuple[int, bytes]:
        offset = (page - 1) * page_size
        items, total = await db.session(
            "deals", lambda s: deals.deals_listing(s, f, page_size, offset)
        )
        body = {"items": items, "page": page, "page_size": page_size, "total": total}
        return 200, dumps(body)

    return await cache.get_or_load("deals", key, TTL_DEALS, load, db.saturated)


async def deals_feed(cache: Cache, db: Database, f: deals.DealFilters) -> Outcome:
    """The Atom document (not JSON) of the current deals, cached like the JSON answers."""
    key = f"deals:feed:{f.key()}"

    async def load() -> tuple[int, bytes]:
        items = await deals.deals_page(db, f, FEED_MAX_ENTRIES, 0)
        return 200, atom.deals_feed(items)

    return await cache.get_or_load("deals_feed", key, TTL_DEALS, load, db.saturated)


async def deals_badges(cache: Cache, db: Database, slugs: tuple[str, ...]) -> Outcome:
    key = f"deals:badges:{','.join(slugs)}"

    async def load() -> tuple[int, bytes]:
        return 200, dumps({"items": await deals.slug_badges(db, list(slugs))})

    return await cache.get_or_load("deals_badges", key, TTL_DEALS, load, db.saturated)
