"""Parameter normalization: the Python twin of the mart's search_text must agree with
PostgreSQL's own lower(unaccent(...)); LIKE escaping; canonical catalog filters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from api.params import like_escape, normalize_search, parse_catalog
from pricecat.config import Settings
from tests.api.conftest import ApiServer

SAMPLES = [
    "Osadníci z Katanu", "Černá kočka", "Šachy", "Kočičí výbuch 2 🐱", "Příšerky ŽÁDNÉ ůú",
    "Ďábelské Ťuky Ňouma", "Größe Straße", "Łódź Ølstykke", "Æsir Œuvre", "Crème brûlée",
    "ÀÉÎÕÜ àéîõü ñ ç", "Dixit \"Odyssey\"", "100% zábava", "Pan_Tau's klobouk",
]


def test_normalize_matches_postgres_unaccent(db_settings: Settings) -> None:
    async def pg() -> list[str]:
        conn = await asyncpg.connect(db_settings.api_database_url)
        try:
            rows = await conn.fetch(
                "select lower(public.unaccent(x)) as n from unnest($1::text[]) with ordinality "
                "as t (x, i) order by i",
                SAMPLES,
            )
            return [r["n"] for r in rows]
        finally:
            await conn.close()

    assert [normalize_search(s) for s in SAMPLES] == asyncio.run(pg())


def test_normalize_trims_and_collapses() -> None:
    assert normalize_search("  OSADNÍCI \t z\n\nKatanu  ") == "osadnici z katanu"


def test_like_escape() -> None:
    assert like_escape("100%_a\\b") == "100\\%\\_a\\\\b"


def test_canonical_filters_hash() -> None:
    a = parse_catalog({"categories": ["Párty, karetní"], "q": ["  BANG "], "min_price": ["10"]})
    b = parse_catalog(
        {"min_price": ["10.00"], "q": ["bang"], "categories": ["karetní,párty,,"],
         "sort": ["relevance"], "availability": ["any"]}
    )
    assert a.filters == b.filters and a.filters.filters_hash() == b.filters.filters_hash()
    c = parse_catalog({"q": ["bang"], "sort": ["name"]})
    assert c.filters.filters_hash() != b.filters.filters_hash()


def test_web_assets_when_built(api: ApiServer) -> None:
    dist = Path(__file__).resolve().parents[2] / "web" / "dist" / "assets"
    files = sorted(p.name for p in dist.glob("*")) if dist.is_dir() else []
    if not files:
        pytest.skip("web/dist not built")
    r = api.get(f"/assets/{files[0]}")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert api.get("/assets/does-not-exist.js").json()["error"]["code"] == "not_found"
