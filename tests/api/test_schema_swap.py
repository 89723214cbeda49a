"""A publish (atomic schema rename, as the refresh flow does) while the API holds prepared
statements: the next request after the generation bump reads the new tables, no error."""

from __future__ import annotations

import asyncio

import asyncpg

from pricecat.config import API_ROLE
from tests.api.conftest import ApiServer

SWAP = "catalog_swaptest"
OLD = "catalog_swapold"


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


def test_schema_swap_is_picked_up_without_errors(api: ApiServer) -> None:
    url = api.settings.database_url
    before = api.get("/api/v1/products/azul")
    assert before.status_code == 200 and before.json()["name"] == "Azul"
    api.get("/api/v1/catalog", params={"q": "azul"})  # prepare these statements too
    asyncio.run(_sql(
        url,
        f"drop schema if exists {SWAP} cascade",
        f"create schema {SWAP}",
        f"create table {SWAP}.catalog_slug_summary as table catalog.catalog_slug_summary",
        f"create table {SWAP}.catalog_slug_seller_summary "
        "as table catalog.catalog_slug_seller_summary",
        f"update {SWAP}.catalog_slug_summary set name = 'Azul (new build)' "  # noqa: S608
        "where slug = 'azul'",
        f"grant usage on schema {SWAP} to {API_ROLE}",
        f"grant select on all tables in schema {SWAP} to {API_ROLE}",
    ))
    swapped = False
    try:
        asyncio.run(_sql(
            url,
            f"alter schema catalog rename to {OLD}",
            f"alter schema {SWAP} rename to catalog",
            transaction=True,
        ))
        swapped = True
        api.bump_generation()
        after = api.get("/api/v1/products/azul")
        assert after.status_code == 200, after.text
        assert after.json()["name"] == "Azul (new build)"
        assert [s["seller"] for s in after.json()["sellers"]] == ["tlamagames", "tlamagase"]
        listing = api.get("/api/v1/catalog", params={"q": "azul"})
        assert listing.status_code == 200
        assert listing.json()["items"][0]["name"] == "Azul (new build)"
    finally:
        if swapped:
            asyncio.run(_sql(
                url,
                f"alter schema catalog rename to {SWAP}",
                f"alter schema {OLD} rename to catalog",
                transaction=True,
            ))
        asyncio.run(_sql(url, f"drop schema if exists {SWAP} cascade"))
        api.bump_generation()
    restored = api.get("/api/v1/products/azul")
    assert restored.status_code == 200 and restored.json()["name"] == "Azul"
