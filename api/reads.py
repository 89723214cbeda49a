"""Per-endpoint read-through: the cache key (every argument), the TTL, and the loader that runs
the queries and renders the JSON body. Routes call these; these call api/queries."""

from __future__ import annotations

from api.cache import Cache, Outcome
from api.db import Database
from api.encoding import dumps
from api.errors import error_body
from api.params import CatalogQuery, SuggestQuery
from api.queries import catalog, categories, products, snapshots, suggest

TTL_CATALOG = 120
TTL_PRODUCT = 300
TTL_SUGGEST = 60
TTL_CATEGORIES = 600
TTL_RECENT = 120


async def catalog_page(cache: Cache, db: Database, query: CatalogQuery) -> Outcome:
    f = query.filters
    key = f"catalog:{f.filters_hash()}:{query.page}:{query.page_size}"

    async def load() -> tuple[int, bytes]:
        offset = (query.page - 1) * query.page_size
        items = await catalog.catalog_page(db, f, query.page_size, offset)
        total = await catalog.catalog_count(db, f)
        estimate = await catalog.catalog_estimate(db, f)
        body = {
            "items": items,
            "page": query.page,
            "page_size": query.page_size,
            "total": total,
            "total_estimate": estimate,
        }
        return 200, dumps(body)

    return await cache.get_or_load("catalog", key, TTL_CATALOG, load)


async def product(cache: Cache, db: Database, slug: str) -> Outcome:
    async def load() -> tuple[int, bytes]:
        found = await products.product(db, slug)
        if found is None:
            return 404, error_body(
                "not_found", f"No product with slug '{slug}'", {"parameter": "slug", "value": slug}
            )
        return 200, dumps(found)

    return await cache.get_or_load("product", f"product:{slug}", TTL_PRODUCT, load)


async def suggestions(cache: Cache, db: Database, query: SuggestQuery) -> Outcome:
    key = f"suggest:{query.q}:{query.availability}:{query.limit}"

    async def load() -> tuple[int, bytes]:
        return 200, dumps({"items": await suggest.suggest(db, query)})

    return await cache.get_or_load("suggest", key, TTL_SUGGEST, load)


async def category_list(cache: Cache, db: Database) -> Outcome:
    async def load() -> tuple[int, bytes]:
        return 200, dumps({"items": await categories.categories(db)})

    return await cache.get_or_load("categories", "categories:list", TTL_CATEGORIES, load)


async def recent(cache: Cache, db: Database, limit: int) -> Outcome:
    async def load() -> tuple[int, bytes]:
        return 200, dumps({"items": await snapshots.recent_snapshots(db, limit)})

    return await cache.get_or_load("recent", f"recent:{limit}", TTL_RECENT, load)
