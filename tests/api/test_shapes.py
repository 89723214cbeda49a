"""api/schemas.py is the one declaration of each response shape: every endpoint's real answers
validate against its model (``extra="forbid"``: a key a query adds without the model fails here,
and so does a missing one), and the OpenAPI document the server serves is the one
``python -m api.openapi_dump`` writes for the web UI's generated types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from api import schemas
from api.openapi_dump import openapi_document
from pricecat.config import Settings
from tests.api.conftest import ApiServer, run_server, server_settings
from tests.fixtures.deals import deals_settings  # noqa: F401 - session fixture


def conforms(server: ApiServer, path: str, model: type[BaseModel], status: int = 200,
             **params: object) -> BaseModel:
    r = server.get(path, params=params)
    assert r.status_code == status, (path, r.text[:500])
    return model.model_validate_json(r.content, strict=True)


def test_every_endpoint_answers_its_declared_shape(api: ApiServer) -> None:
    page = conforms(api, "/api/v1/catalog", schemas.CatalogPage, page_size=50)
    assert isinstance(page, schemas.CatalogPage) and page.items
    for card in page.items[:5]:
        product = conforms(api, f"/api/v1/products/{card.slug}", schemas.Product)
        assert isinstance(product, schemas.Product) and product.sellers
    assert conforms(api, "/api/v1/catalog", schemas.CatalogPage, q="kocka", sort="relevance")
    suggest = conforms(api, "/api/v1/search/suggest", schemas.SuggestList, q="ko")
    assert isinstance(suggest, schemas.SuggestList) and suggest.items
    categories = conforms(api, "/api/v1/meta/categories", schemas.CategoryList)
    assert isinstance(categories, schemas.CategoryList) and categories.items
    recent = conforms(api, "/api/v1/snapshots/recent", schemas.RecentList, limit=20)
    assert isinstance(recent, schemas.RecentList) and recent.items
    conforms(api, "/healthz", schemas.Health)
    conforms(api, "/readyz", schemas.Ready)
    conforms(api, "/api/v1/deals", schemas.DealsPage)
    conforms(api, "/api/v1/deals/badges", schemas.SlugBadgesList, slugs="cerna-kocka")
    for path, params, status in (
        ("/api/v1/products/no-such-slug", {}, 404),
        ("/api/v1/catalog", {"page": "0"}, 400),
        ("/api/v1/catalog", {"nope": "1"}, 400),
        ("/api/v1/nowhere", {}, 404),
    ):
        error = conforms(api, path, schemas.Error, status, **params)
        assert isinstance(error, schemas.Error) and error.error.code


@pytest.fixture(scope="module")
def deals_api(deals_settings: Settings, api_log_dir: Path) -> Iterator[ApiServer]:  # noqa: F811
    with run_server(server_settings(deals_settings), api_log_dir) as server:
        yield server


def test_deals_discounts_and_badges_answer_their_declared_shape(deals_api: ApiServer) -> None:
    """The deals fixture has what the main one lacks: discounts, badges, window lows."""
    deals = conforms(deals_api, "/api/v1/deals", schemas.DealsPage)
    assert isinstance(deals, schemas.DealsPage) and deals.items
    assert any(d.badges for d in deals.items)
    badges = conforms(deals_api, "/api/v1/deals/badges", schemas.SlugBadgesList,
                      slugs="deal-old-price,deal-null-prices")
    assert isinstance(badges, schemas.SlugBadgesList) and badges.items
    product = conforms(deals_api, "/api/v1/products/deal-null-prices", schemas.Product)
    assert isinstance(product, schemas.Product)
    assert any(s.discount is not None for s in product.sellers)


def test_served_openapi_document_is_the_dumped_one(api: ApiServer) -> None:
    def comparable(spec: dict[str, Any]) -> dict[str, Any]:
        # sanic-ext lists the tags in set order (varies per process); nothing is generated
        # from that list
        return {**spec, "tags": sorted(t["name"] for t in spec.get("tags", []))}

    served = api.get("/docs/openapi.json").json()
    assert comparable(served) == comparable(openapi_document())
