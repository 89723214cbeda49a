"""Publishes (atomic schema renames, as the refresh flow does) under a running API.

1. The swap alone turns the API over: the new build has a new `catalog_build_info.build_id`, so
   the next request reads the new tables (no Redis involved, no error, no stale answer).
2. One answer = one build: a product answer is two statements (summary, then sellers). A swap
   that lands between them must not give a mixed answer. The test holds a lock on the sellers
   table so the API's second statement waits, swaps in a build whose name AND prices differ,
   then lets the statement go: it resolves to the new table. The answer must be all-new (the
   API re-reads the build id after its statements and reloads) — never old name + new prices.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx

from pricecat.config import API_ROLE
from tests.api.conftest import ApiServer
from tests.helpers import fetch, publish_new_build

NEXT = "catalog_swaptest"
OLD = "catalog_swapold"
NEW_NAME = "Azul (new build)"
#: azul's sellers in the fixture (tests/fixtures/expected.py), new prices in the new build
PRICE_BUMP = 1000


async def _sql(url: str, *statements: str, transaction: bool = False) -> None:
    conn = await asyncpg.connect(url)
    try:
        if transaction:
            async with conn.transaction():
                for s in statements:
                    await conn.execute(s)
        else:
            for s in statements:
                await conn.execute(s)
    finally:
        await conn.close()


def _prepare_next_build(url: str) -> None:
    """A copy of every published table with azul renamed and every azul offer 1000 Kč dearer,
    and its own build id (as a real build would have)."""

    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            tables = [r["tablename"] for r in await conn.fetch(
                "select tablename from pg_tables where schemaname = 'catalog' "
                "and tablename <> 'catalog_build_info' order by tablename"
            )]
        finally:
            await conn.close()
        await _sql(
            url,
            f"drop schema if exists {NEXT} cascade",
            f"create schema {NEXT}",
            *(f"create table {NEXT}.{t} as table catalog.{t}" for t in tables),
            f"create table {NEXT}.catalog_build_info as "  # noqa: S608 - test constants
            "select nextval('catalog_ops.build_ids')::bigint as build_id, "
            "build_id as previous_build_id, now() as built_at from catalog.catalog_build_info",
            f"update {NEXT}.catalog_slug_summary set name = '{NEW_NAME}' "  # noqa: S608
            "where slug = 'azul'",
            f"update {NEXT}.catalog_slug_seller_summary "  # noqa: S608
            f"set current_price = current_price + {PRICE_BUMP} where slug = 'azul'",
            f"grant usage on schema {NEXT} to {API_ROLE}",
            f"grant select on all tables in schema {NEXT} to {API_ROLE}",
        )

    asyncio.run(go())


@contextmanager
def _next_build_published(url: str) -> Iterator[None]:
    """Swap the prepared build in; swap the original back and drop the copy afterwards."""
    swapped = False
    try:
        asyncio.run(_sql(
            url,
            f"alter schema catalog rename to {OLD}",
            f"alter schema {NEXT} rename to catalog",
            transaction=True,
        ))
        swapped = True
        yield
    finally:
        if swapped:
            asyncio.run(_sql(
                url,
                f"alter schema catalog rename to {NEXT}",
                f"alter schema {OLD} rename to catalog",
                transaction=True,
            ))
        asyncio.run(_sql(url, f"drop schema if exists {NEXT} cascade"))


def _offer_prices(product: dict[str, Any]) -> dict[str, float | None]:
    return {s["seller"]: s["current_price"] for s in product["sellers"]}


def test_a_swap_alone_turns_the_api_over(api: ApiServer) -> None:
    url = api.settings.database_url
    before = api.get("/api/v1/products/azul")
    assert before.status_code == 200 and before.json()["name"] == "Azul"
    listing = api.get("/api/v1/catalog", params={"q": "azul"})
    assert listing.json()["items"][0]["name"] == "Azul"
    assert api.get("/api/v1/products/azul").headers["x-cache"] == "hit"
    _prepare_next_build(url)
    with _next_build_published(url):
        # no generation bump by hand: the new build's id is the new generation
        after = api.get("/api/v1/products/azul")
        assert after.status_code == 200, after.text
        assert after.headers["x-cache"] == "miss"
        assert after.json()["name"] == NEW_NAME
        old_prices = _offer_prices(before.json())
        assert _offer_prices(after.json()) == {
            seller: None if price is None else price + PRICE_BUMP
            for seller, price in old_prices.items()
        }
        listing = api.get("/api/v1/catalog", params={"q": "azul"})
        assert listing.status_code == 200
        assert listing.json()["items"][0]["name"] == NEW_NAME
    restored = api.get("/api/v1/products/azul")
    assert restored.status_code == 200 and restored.json()["name"] == "Azul"
    assert _offer_prices(restored.json()) == _offer_prices(before.json())


def _backends_waiting_for_lock(url: str) -> int:
    async def go() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(
                "select count(*) from pg_locks l join pg_stat_activity a using (pid) "
                "where not l.granted and a.application_name = 'pricecat-api'"
            ))
        finally:
            await conn.close()

    return asyncio.run(go())


def test_a_swap_between_two_statements_never_mixes_builds(api: ApiServer) -> None:
    url = api.settings.database_url
    before = api.get("/api/v1/products/azul").json()
    old_prices = _offer_prices(before)
    new_prices = {s: None if p is None else p + PRICE_BUMP for s, p in old_prices.items()}
    _prepare_next_build(url)
    publish_new_build(api.settings)  # a fresh key space: the next product request is a miss

    got: dict[str, Any] = {}

    async def hold_sellers_lock(locked: threading.Event, release: threading.Event) -> None:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                await conn.execute(
                    "lock table catalog.catalog_slug_seller_summary in access exclusive mode"
                )
                locked.set()
                while not release.is_set():
                    await asyncio.sleep(0.01)
        finally:
            await conn.close()

    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=lambda: asyncio.run(hold_sellers_lock(locked, release)))
    holder.start()
    try:
        assert locked.wait(10)

        def request() -> None:
            with httpx.Client(base_url=api.url, timeout=30) as c:
                got["response"] = c.get("/api/v1/products/azul")

        requester = threading.Thread(target=request)
        requester.start()
        # the summary statement ran; the sellers statement waits for the lock
        deadline = time.monotonic() + 10
        while _backends_waiting_for_lock(url) < 1:
            assert time.monotonic() < deadline, "the API never reached the sellers statement"
            time.sleep(0.02)
        with _next_build_published(url):
            release.set()
            holder.join(10)
            requester.join(30)
            response = got["response"]
            assert response.status_code == 200, response.text
            product = response.json()
            answer = (product["name"], _offer_prices(product))
            # all-new (the swap happened before the answer was complete), never mixed
            assert answer == (NEW_NAME, new_prices), answer
            again = api.get("/api/v1/products/azul").json()
            assert (again["name"], _offer_prices(again)) == (NEW_NAME, new_prices)
    finally:
        release.set()
        holder.join(10)
    # the generation read by the API is the swapped-back build again: the original data
    restored = api.get("/api/v1/products/azul").json()
    assert (restored["name"], _offer_prices(restored)) == ("Azul", old_prices)
    assert fetch(api.settings, "select count(*) as n from pg_namespace where nspname = $1",
                 NEXT)[0]["n"] == 0


def test_redis_flush_then_publish_shows_the_new_total(api: ApiServer) -> None:
    """Catalog totals are memoized per generation. The generation is the build id, never a
    counter that a Redis flush resets, so after a flush and a publish the first answer already
    has the new build's total (here: one product fewer)."""
    url = api.settings.database_url
    params = {"q": "a"}
    first = api.get("/api/v1/catalog", params=params).json()
    again = api.get("/api/v1/catalog", params={**params, "page": 2}).json()  # memo used
    assert again["total"] == first["total"] and first["total"] >= 2
    removed = first["items"][0]["slug"]
    _prepare_next_build(url)

    async def remove() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                f"delete from {NEXT}.catalog_slug_summary where slug = $1", removed  # noqa: S608
            )
        finally:
            await conn.close()

    asyncio.run(remove())
    from redis import Redis

    r = Redis.from_url(api.settings.redis_url)
    for key in r.scan_iter(match=f"{api.settings.cache_namespace}:*"):
        r.delete(key)  # what a flush or a restart without persistence does to this namespace
    r.close()
    with _next_build_published(url):
        after = api.get("/api/v1/catalog", params=params)
        assert after.status_code == 200
        assert after.json()["total"] == first["total"] - 1
        assert removed not in [i["slug"] for i in after.json()["items"]]
        page2 = api.get("/api/v1/catalog", params={**params, "page": 2}).json()
        assert page2["total"] == first["total"] - 1
