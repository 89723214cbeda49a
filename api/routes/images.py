"""GET /api/v1/images/{slug} — the same-origin image proxy (api/images.py)."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, HTTPResponse, Request, Sanic
from sanic_ext import openapi

from api import images
from api.cache import Cache
from api.db import Database
from api.http import etag_matches
from api.images import ImageFetcher
from api.params import parse_none, parse_slug
from api.routes import PROVIDERS, inject
from api.routes.docs import POLICY, apply, error_responses, string


def get_fetcher(request: Request) -> ImageFetcher:
    """The worker's upstream image client, created in before_server_start."""
    fetcher: ImageFetcher = request.app.ctx.image_fetcher
    return fetcher


PROVIDERS[ImageFetcher] = get_fetcher  # before @inject below resolves the handler's hints


def _binary() -> Any:
    return openapi.Binary()  # type: ignore[no-untyped-call]


@apply(
    openapi.summary("The product's hero image, served from this origin"),
    openapi.description(
        "The image bytes the read model's hero_image_url points at, fetched by the server "
        "(only that URL, http(s) only, connect 2 s / total 5 s, at most 2 MB, raster image "
        "types only) and cached 1 day (Cache-Control: public, max-age=86400, strong ETag, "
        "X-Cache). When the product has no image or the seller's host fails, a generated SVG "
        "with the product's initials is answered instead (200, image/svg+xml, max-age=300, "
        "X-Image: placeholder)." + POLICY
    ),
    openapi.tag("products"),
    openapi.parameter(
        "slug", string(pattern="^[a-z0-9-]{1,200}$", maxLength=200), "path",
        description="product_name_normalized: lower-case letters, digits and '-'",
    ),
    openapi.response(
        200,
        {"image/*": _binary(), "image/svg+xml": _binary()},
        "The image, or the placeholder SVG (X-Image: placeholder)",
    ),
    openapi.response(304, None, "Not modified (If-None-Match matched the ETag)"),
    *error_responses(400, 404),
)
@inject
async def get_image(
    request: Request, slug: str, db: Database, cache: Cache, fetcher: ImageFetcher
) -> HTTPResponse:
    parse_none(request.args)
    answer = await images.hero_image(cache, db, fetcher, parse_slug(slug))
    request.ctx.cached = True  # no gzip of image bytes by the response middleware
    headers = {"X-Cache": answer.x_cache, **images.SECURITY_HEADERS}
    if answer.status != 200:
        headers["Cache-Control"] = "no-store"
        return HTTPResponse(
            answer.body, status=answer.status, headers=headers, content_type=answer.content_type
        )
    headers["Cache-Control"] = f"public, max-age={answer.max_age}"
    headers["ETag"] = answer.etag
    if answer.placeholder:
        headers["X-Image"] = "placeholder"
    if etag_matches(request.headers.get("if-none-match"), answer.etag):
        return HTTPResponse(status=304, headers=headers)
    return HTTPResponse(answer.body, status=200, headers=headers, content_type=answer.content_type)


async def _open_fetcher(app: Sanic[Any, Any]) -> None:
    app.ctx.image_fetcher = ImageFetcher(
        allow_private=app.ctx.settings.image_proxy_allow_private
    )


async def _close_fetcher(app: Sanic[Any, Any]) -> None:
    fetcher: ImageFetcher | None = getattr(app.ctx, "image_fetcher", None)
    if fetcher is not None:
        app.ctx.image_fetcher = None
        await fetcher.close()


def blueprint() -> Blueprint:
    bp = Blueprint("images", url_prefix="/api/v1")
    bp.add_route(get_image, "/images/<slug:str>", methods=["GET"], name="image")
    bp.listener("before_server_start")(_open_fetcher)
    bp.listener("after_server_stop")(_close_fetcher)
    return bp
