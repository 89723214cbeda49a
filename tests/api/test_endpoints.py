"""Every endpoint's values against the hand-made fixture (tests/fixtures/snapshots.py) and its
hand-computed mart rows (tests/fixtures/expected.py), plus literal expectations per endpoint."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.api.conftest import ApiServer
from tests.fixtures import expected as E
from tests.fixtures.snapshots import ROWS


def money(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slugs(body: dict[str, Any]) -> list[str]:
    return [item["slug"] for item in body["items"]]


def catalog(api: ApiServer, **params: object) -> dict[str, Any]:
    r = api.get("/api/v1/catalog", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# Czech order of the 28 fixture names, written by hand (the API sorts names with ICU `cs`):
# digits first, then letters with Č right after C and Š right after S (not after Z as in code
# point order), punctuation before letters ("Pan_Tau's" before "Panic"), a shorter prefix first
# ("Dixit" before 'Dixit "Odyssey"').
BY_NAME = [
    "100-procent-zabava",  # 100% zábava
    "7-divu-sveta",  # 7 divů světa
    "agricola",
    "azul",
    "bang",  # Bang!
    "carcassonne",
    "cerna-kocka",  # Černá kočka
    "dixit",
    "dixit-odyssey",  # Dixit "Odyssey"
    "duna-nesmrtelnost",  # Duna: Nesmrtelnost
    "gloomhaven-2",
    "hanabi",
    "kocici-vybuch-2",  # Kočičí výbuch 2
    "kryci-jmena",  # Krycí jména
    "mysi-a-kouzla",  # Myši a kouzla
    "nemesis",
    "osadnici-z-katanu",
    "pan-tau",  # Pan_Tau's klobouk
    "panic-lab",
    "patchwork",
    "prsi",  # Prší
    "splendor",
    "sachy",  # Šachy
    "tajemny-ostrov",
    "ticket-to-ride-evropa",
    "twilight-imperium",
    "ubongo",
    "zombicide",
]


# ---- /catalog -----------------------------------------------------------------------------


def test_catalog_default_page_is_sorted_by_name_with_light_cards(api: ApiServer) -> None:
    body = catalog(api)
    assert body["page"] == 1 and body["page_size"] == 24
    assert body["total"] == E.SLUG_COUNT == 28
    assert isinstance(body["total_estimate"], int) and body["total_estimate"] >= 1
    assert slugs(body) == BY_NAME[:24]
    assert slugs(body)[:5] == ["100-procent-zabava", "7-divu-sveta", "agricola", "azul", "bang"]
    card = next(i for i in body["items"] if i["slug"] == "osadnici-z-katanu")
    assert card == {
        "slug": "osadnici-z-katanu",
        "name": "Osadníci z Katanu",
        "hero_image_url": "https://img.tlamagames.cz/katan.jpg",
        "min_price": 949.0,
        "min_price_seller": "tlamagames",
        "seller_count": 3,
        "is_available": True,
        "is_preorder": False,
        "categories": ["obchodní", "rodinné hry", "strategické"],
        "last_scraped_at": "2026-11-19T11:00:00Z",
    }
    # every card agrees with the hand-computed summary row; no history arrays on cards
    for item in body["items"]:
        row = E.SLUG_SUMMARY[item["slug"]]
        assert set(item) == {
            "slug", "name", "hero_image_url", "min_price", "min_price_seller", "seller_count",
            "is_available", "is_preorder", "categories", "last_scraped_at",
        }
        assert item["name"] == row["name"]
        assert item["hero_image_url"] == row["hero_image_url"]
        assert item["min_price"] == money(row["min_price"])
        assert item["min_price_seller"] == row["min_price_seller"]
        assert item["seller_count"] == row["seller_count"]
        assert item["is_available"] is row["is_available"]
        assert item["is_preorder"] is row["is_preorder"]
        assert item["categories"] == row["categories"]
        assert item["last_scraped_at"] == iso(row["last_scraped_at"])


def test_catalog_pagination_edges(api: ApiServer) -> None:
    last = catalog(api, page=2)
    assert slugs(last) == BY_NAME[24:] and len(last["items"]) == 4 and last["total"] == 28
    past = catalog(api, page=3)
    assert past["items"] == [] and past["total"] == 28 and past["page"] == 3
    pages = [slugs(catalog(api, page=p, page_size=5)) for p in range(1, 7)]
    assert [len(p) for p in pages] == [5, 5, 5, 5, 5, 3]
    assert sum(pages, []) == BY_NAME  # stable, no duplicates, no gaps
    assert catalog(api, page=7, page_size=5)["items"] == []
    one = catalog(api, page_size=1, page=28)
    assert slugs(one) == ["zombicide"] and one["total"] == 28  # not 'Šachy' (code point order)
    assert slugs(catalog(api, page_size=7))[-2:] == ["carcassonne", "cerna-kocka"]
    assert sorted(BY_NAME) == sorted(E.SLUG_SUMMARY)  # the literal covers every fixture slug
    assert len(catalog(api, page_size=100)["items"]) == 28


@pytest.mark.parametrize(
    ("availability", "expected"),
    [
        ("available", E.AVAILABLE_SLUGS),
        ("preorder", E.PREORDER_SLUGS),
        ("unavailable", E.UNAVAILABLE_SLUGS),
        ("any", frozenset(E.SLUG_SUMMARY)),
    ],
)
def test_catalog_availability(api: ApiServer, availability: str, expected: frozenset[str]) -> None:
    body = catalog(api, availability=availability, page_size=100)
    assert set(slugs(body)) == set(expected)
    assert body["total"] == len(expected)


def test_catalog_availability_counts_literal(api: ApiServer) -> None:
    assert catalog(api, availability="available")["total"] == 20
    assert slugs(catalog(api, availability="preorder")) == [
        "duna-nesmrtelnost", "gloomhaven-2", "kocici-vybuch-2",
    ]
    assert catalog(api, availability="unavailable")["total"] == 5


def test_catalog_sort_price_asc_and_desc(api: ApiServer) -> None:
    priced = [slug for slug, _ in E.MIN_PRICE_ORDER]
    unpriced = sorted(E.NO_MIN_PRICE_SLUGS)
    asc = catalog(api, sort="price_asc", page_size=100)
    assert slugs(asc) == priced + unpriced  # missing prices last, ties by slug
    assert [i["min_price"] for i in asc["items"][:3]] == [99.0, 199.0, 229.0]
    desc = catalog(api, sort="price_desc", page_size=100)
    by_price_desc = sorted(E.MIN_PRICE_ORDER, key=lambda t: (-t[1], t[0]))
    assert slugs(desc) == [s for s, _ in by_price_desc] + unpriced
    assert slugs(desc)[:3] == ["gloomhaven-2", "twilight-imperium", "nemesis"]
    # the 849.00 tie is broken by slug in both directions
    assert slugs(asc).index("dixit-odyssey") + 1 == slugs(asc).index("splendor")
    assert slugs(desc).index("dixit-odyssey") + 1 == slugs(desc).index("splendor")


def test_catalog_sort_newest(api: ApiServer) -> None:
    body = catalog(api, sort="newest", page_size=100)
    want = [r["slug"] for r in sorted(E.SLUG_ROWS, key=lambda r: r["slug"])]
    want.sort(key=lambda s: E.SLUG_SUMMARY[s]["first_seen_at"], reverse=True)
    assert slugs(body) == want
    assert slugs(body)[:5] == [
        "ubongo", "panic-lab", "kocici-vybuch-2", "nemesis", "tajemny-ostrov",
    ]


def test_catalog_price_range_and_categories_combined(api: ApiServer) -> None:
    ranged = catalog(api, min_price="300", max_price="700", sort="price_asc")
    assert slugs(ranged) == [
        "bang", "kryci-jmena", "kocici-vybuch-2", "patchwork", "sachy", "carcassonne", "ubongo",
    ]
    assert ranged["total"] == 7
    edges = catalog(api, min_price="849", max_price="849.00", sort="price_asc")
    assert slugs(edges) == ["dixit-odyssey", "splendor"]  # bounds are inclusive
    both = catalog(api, categories="karetní,párty", availability="available")
    assert slugs(both) == ["bang", "cerna-kocka"] and both["total"] == 2
    assert slugs(catalog(api, categories="karetní,párty")) == [
        "bang", "cerna-kocka", "kocici-vybuch-2",  # Czech order: Č right after C
    ]
    all_three = catalog(
        api, categories="  Párty , KARETNÍ,,", availability="available", max_price="300",
        sort="price_desc",
    )
    assert slugs(all_three) == ["cerna-kocka"]
    assert catalog(api, categories="neexistuje")["total"] == 0
    strategic = catalog(api, categories="strategické", page_size=100)
    assert strategic["total"] == E.CATEGORY_COUNTS["strategické"] == 10


def test_catalog_q_is_accent_and_case_insensitive(api: ApiServer) -> None:
    for q in ("osadnici", "OSADNÍCI", "  osadníci   z  ", "katan", "osadnici katanu"):
        body = catalog(api, q=q)
        assert slugs(body) == ["osadnici-z-katanu"], q
        assert body["total"] == 1
    assert slugs(catalog(api, q="černá")) == ["cerna-kocka"]
    assert slugs(catalog(api, q="SACHY")) == ["sachy"]
    assert catalog(api, q="nic takoveho")["items"] == []


def test_catalog_q_relevance_and_explicit_sort(api: ApiServer) -> None:
    rel = catalog(api, q="dixit")
    assert slugs(rel) == ["dixit", "dixit-odyssey"]
    # word prefix ('edice' in the name) before others; sort= overrides relevance
    assert slugs(catalog(api, q="edice", sort="price_desc")) == [
        "gloomhaven-2", "twilight-imperium", "zombicide",
    ]
    assert slugs(catalog(api, q="edice", sort="name")) == [
        "gloomhaven-2", "twilight-imperium", "zombicide",
    ]


def test_catalog_q_escapes_like_metacharacters(api: ApiServer) -> None:
    assert slugs(catalog(api, q="%")) == ["100-procent-zabava"]
    assert slugs(catalog(api, q="100%")) == ["100-procent-zabava"]
    assert slugs(catalog(api, q="_")) == ["pan-tau"]
    assert slugs(catalog(api, q="pan_tau's")) == ["pan-tau"]
    assert catalog(api, q="\\")["total"] == 0
    assert slugs(catalog(api, q='"odyssey"')) == ["dixit-odyssey"]


def test_catalog_one_row_per_slug(api: ApiServer) -> None:
    body = catalog(api, page_size=100)
    assert len(slugs(body)) == len(set(slugs(body))) == 28


# ---- /products/{slug} ---------------------------------------------------------------------


def expected_product(slug: str) -> dict[str, Any]:
    row = E.SLUG_SUMMARY[slug]
    sellers = []
    for seller in row["sellers"]:
        s = E.SELLER_SUMMARY[(slug, seller)]
        sellers.append(
            {
                "seller": seller,
                "url": s["url"],
                "product_codes": s["product_codes"],
                "current_price": money(s["current_price"]),
                "availability_raw": s["availability_raw"],
                "is_available": s["is_available"],
                "is_preorder": s["is_preorder"],
                "min_price": money(s["min_price"]),
                "max_price": money(s["max_price"]),
                "last_seen_at": iso(s["last_seen_at"]),
                "price_points": [[t, money(p), a] for t, p, a in s["price_points"]],
            }
        )
    return {
        "slug": slug,
        "name": row["name"],
        "hero_image_url": row["hero_image_url"],
        "description": row["description"],
        "categories": row["categories"],
        "min_price": money(row["min_price"]),
        "min_price_seller": row["min_price_seller"],
        "lowest_price_ever": money(row["lowest_price_ever"]),
        "lowest_price_ever_at": iso(row["lowest_price_ever_at"]),
        "seller_count": row["seller_count"],
        "is_available": row["is_available"],
        "is_preorder": row["is_preorder"],
        "first_seen_at": iso(row["first_seen_at"]),
        "last_scraped_at": iso(row["last_scraped_at"]),
        "sellers": sellers,
    }


def without_deals(body: dict[str, Any]) -> dict[str, Any]:
    """The deals fields depend on the build's time here: tests/api/test_deals.py checks them on
    its own fixture with a fixed as_of."""
    out = {k: v for k, v in body.items() if k != "market_lows"}
    out["sellers"] = [
        {k: v for k, v in s.items() if k not in ("lows", "discount", "badges")}
        for s in body["sellers"]
    ]
    return out


def test_product_matches_expected_rows_for_every_slug(api: ApiServer) -> None:
    with api.client() as c:
        for slug in E.SLUG_SUMMARY:
            r = c.get(f"/api/v1/products/{slug}")
            assert r.status_code == 200, (slug, r.text)
            assert "market_lows" in r.json(), slug
            assert without_deals(r.json()) == expected_product(slug), slug


def test_product_literal_osadnici(api: ApiServer) -> None:
    body = api.get("/api/v1/products/osadnici-z-katanu").json()
    assert [s["seller"] for s in body["sellers"]] == ["tlamagames", "tlamagase", "svet-her"]
    assert body["min_price"] == 949.0 and body["lowest_price_ever"] == 899.0
    assert body["lowest_price_ever_at"] == "2026-09-01T10:00:00Z"
    assert body["description"] == "Klasická budovatelská hra o obchodu a osidlování ostrova."
    tg = body["sellers"][0]
    assert tg["price_points"] == [
        ["2026-08-01T10:00:00Z", 999.0, True],
        ["2026-09-01T10:00:00Z", 899.0, True],
        ["2026-09-15T10:00:00Z", 999.0, True],
        ["2026-11-19T10:00:00Z", 949.0, True],
    ]
    assert tg["current_price"] == 949.0 and tg["availability_raw"] == "Skladem"


def test_product_sellers_priority_without_priority_sellers(api: ApiServer) -> None:
    # only non-priority sellers: latest scraped_at desc, ties by seller name
    body = api.get("/api/v1/products/ticket-to-ride-evropa").json()
    assert [s["seller"] for s in body["sellers"]] == E.SLUG_SUMMARY["ticket-to-ride-evropa"][
        "sellers"
    ]
    assert body["sellers"][0]["seller"] == "svet-her"


def test_product_unknown_slug_is_404_json(api: ApiServer) -> None:
    r = api.get("/api/v1/products/neexistuje-123")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert r.json()["error"]["details"]["parameter"] == "slug"


# ---- /search/suggest ----------------------------------------------------------------------


def suggest(api: ApiServer, **params: object) -> list[str]:
    r = api.get("/api/v1/search/suggest", params=params)
    assert r.status_code == 200, r.text
    return slugs(r.json())


def test_suggest_accent_insensitive_and_shape(api: ApiServer) -> None:
    r = api.get("/api/v1/search/suggest", params={"q": "osadnici"})
    assert r.json() == {
        "items": [
            {
                "slug": "osadnici-z-katanu",
                "name": "Osadníci z Katanu",
                "hero_image_url": "https://img.tlamagames.cz/katan.jpg",
                "min_price": 949.0,
                "is_available": True,
                "is_preorder": False,
            }
        ]
    }
    assert suggest(api, q="OSADNÍCI") == ["osadnici-z-katanu"]
    assert suggest(api, q="černá k") == ["cerna-kocka"]


def test_suggest_prefix_first_then_word_prefix(api: ApiServer) -> None:
    got = suggest(api, q="os")
    assert got[:2] == ["osadnici-z-katanu", "tajemny-ostrov"]  # name prefix, then word prefix
    got = suggest(api, q="dix")
    assert got[:2] == ["dixit", "dixit-odyssey"]


def test_suggest_tolerates_one_typo(api: ApiServer) -> None:
    assert suggest(api, q="osadnicu")[0] == "osadnici-z-katanu"
    assert suggest(api, q="karcassonne")[0] == "carcassonne"
    assert suggest(api, q="splendr")[0] == "splendor"


def test_suggest_filters_and_limit(api: ApiServer) -> None:
    assert suggest(api, q="xyzxyzq") == []
    assert suggest(api, q="dixit", availability="unavailable") == []
    assert suggest(api, q="dixit", limit=1) == ["dixit"]
    assert suggest(api, q="edice", availability="preorder") == ["gloomhaven-2"]
    # name prefix (agricola, azul) before a word prefix ('myši a kouzla'), limit respected
    assert suggest(api, q="a", limit=3) == ["agricola", "azul", "mysi-a-kouzla"]


# ---- /meta/categories ---------------------------------------------------------------------


def test_categories_counts_order(api: ApiServer) -> None:
    body = api.get("/api/v1/meta/categories").json()
    assert body["items"] == [
        {"name": "strategické", "count": 10},
        {"name": "párty", "count": 7},
        {"name": "rodinné hry", "count": 6},
        {"name": "karetní", "count": 5},
        {"name": "kooperativní", "count": 4},
        {"name": "dětské", "count": 3},
        {"name": "abstraktní", "count": 2},
        {"name": "logické", "count": 2},
        {"name": "pro 2 hráče", "count": 2},
        {"name": "akční", "count": 1},
        {"name": "obchodní", "count": 1},
        {"name": "slovní", "count": 1},
    ]
    assert {i["name"]: i["count"] for i in body["items"]} == E.CATEGORY_COUNTS


# ---- /snapshots/recent --------------------------------------------------------------------


def expected_recent() -> list[dict[str, Any]]:
    """By hand from ROWS: id = position + 1; previous = same slug+seller, latest earlier
    (scraped_at, id)."""
    rows = [dict(r, id=i + 1) for i, r in enumerate(ROWS)]
    quarantined = {(seller, slug, E._ts(at)) for seller, slug, at, _ in E.QUARANTINED}
    accepted = [
        r for r in rows
        if (r["seller"], r["product_name_normalized"], r["scraped_at"]) not in quarantined
    ]
    newest = sorted(accepted, key=lambda r: (r["scraped_at"], r["id"]), reverse=True)
    out = []
    for r in newest:
        earlier = [
            p for p in rows
            if p["product_name_normalized"] == r["product_name_normalized"]
            and p["seller"] == r["seller"]
            and (p["scraped_at"], p["id"]) < (r["scraped_at"], r["id"])
        ]
        prev = max(earlier, key=lambda p: (p["scraped_at"], p["id"])) if earlier else None
        out.append(
            {
                "slug": r["product_name_normalized"],
                "seller": r["seller"],
                "price": money(r["price"]),
                "previous_price": money(prev["price"]) if prev else None,
                "scraped_at": iso(r["scraped_at"]),
            }
        )
    return out


def test_recent_snapshots_with_previous_price(api: ApiServer) -> None:
    body = api.get("/api/v1/snapshots/recent", params={"limit": 3}).json()
    assert body["items"] == [
        {
            "slug": "cerna-kocka", "seller": "kostka", "price": 239.0, "previous_price": 239.0,
            "availability_raw": "Vyprodáno", "is_available": False, "is_preorder": False,
            "scraped_at": "2026-11-20T07:00:00Z",
        },
        {
            "slug": "cerna-kocka", "seller": "tlamagase", "price": 229.0, "previous_price": 249.0,
            "availability_raw": "Skladem", "is_available": True, "is_preorder": False,
            "scraped_at": "2026-11-20T06:00:00Z",
        },
        {
            "slug": "ticket-to-ride-evropa", "seller": "svet-her", "price": 1150.0,
            "previous_price": 1190.0, "availability_raw": "In stock", "is_available": True,
            "is_preorder": False, "scraped_at": "2026-11-19T20:00:00Z",
        },
    ]
    everything = api.get("/api/v1/snapshots/recent", params={"limit": 500}).json()["items"]
    # quarantined raw rows (tests/fixtures BAD_LISTINGS) are not listed
    assert len(everything) == len(ROWS) - len(E.QUARANTINED) == 98
    trimmed = [
        {k: i[k] for k in ("slug", "seller", "price", "previous_price", "scraped_at")}
        for i in everything
    ]
    assert trimmed == expected_recent()
    # default limit 100: the newest 100 raw rows (all but the two oldest), 4 of them quarantined
    assert len(api.get("/api/v1/snapshots/recent").json()["items"]) == 96


# ---- health -------------------------------------------------------------------------------


def test_healthz_and_readyz(api: ApiServer) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert {k: v["ok"] for k, v in body["checks"].items()} == {
        "postgres": True, "redis": True, "read_models": True,
    }
    # no refresh run in this database: the newest scrape in the marts (cerna-kocka, kostka)
    assert body["data_as_of"] == "2026-11-20T07:00:00Z"
    assert body["data_age_seconds"] > 0


def test_root_without_or_with_web_build(api: ApiServer) -> None:
    r = api.get("/")
    assert r.status_code == 200
    if r.headers["content-type"].startswith("application/json"):
        assert r.json()["docs"] == "/docs"
    else:
        assert "<html" in r.text.lower()
        assert api.get("/p/osadnici-z-katanu").text == r.text  # SPA fallback
        assert api.get("/?q=katan&page=2").text == r.text
    # the UI never shadows the API
    assert api.get("/api/v1/nope").json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("value", ["rodinné hry", "rodinné\u00a0hry", " Rodinné\u202fhry\u2009"])
def test_nbsp_category_facet_filters_what_it_counts(api: ApiServer, value: str) -> None:
    """The facet 'rodinné hry' counts carcassonne, whose tag is 'rodinné\\u00a0hry' at
    tlamagames: filtering by it (typed with any Unicode blank) returns the same 6 products."""
    facets = {c["name"]: c["count"] for c in api.get("/api/v1/meta/categories").json()["items"]}
    assert facets["rodinné hry"] == 6
    r = api.get("/api/v1/catalog", params={"categories": value, "page_size": 50})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 6
    assert "carcassonne" in {i["slug"] for i in body["items"]}
