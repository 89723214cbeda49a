"""The built web UI (``web/dist`` from vite), served at ``/`` when present.

- ``/``, ``/slevy`` and ``/p/<slug>`` (client routes, any query string) -> index.html (``no-cache``)
- ``/assets/...`` -> hashed vite assets (``max-age=1 year, immutable``)
- other top-level files of dist (favicon, robots.txt) -> themselves
Nothing here can shadow /api/v1, /docs, /healthz, /readyz or /metrics: there is no catch-all.
Without web/dist, ``/`` answers a small JSON pointer to the API docs.
"""

from __future__ import annotations

from pathlib import Path

from sanic import Blueprint, HTTPResponse, Request
from sanic.response import file as file_response
from sanic_ext import openapi

from api.encoding import dumps

RESERVED = {"api", "docs", "healthz", "readyz", "metrics", "p", "assets", "feeds", "slevy"}


def blueprint(dist: Path) -> Blueprint:
    bp = Blueprint("web")
    index = dist / "index.html"

    if not index.is_file():

        @openapi.exclude()
        async def root_pointer(request: Request) -> HTTPResponse:
            body = {
                "name": "pricecat API",
                "docs": "/docs",
                "openapi": "/docs/openapi.json",
                "api": "/api/v1",
                "note": "web UI not built (web/dist missing)",
            }
            return HTTPResponse(dumps(body), content_type="application/json")

        bp.add_route(root_pointer, "/", methods=["GET"], name="root")
        return bp

    @openapi.exclude()
    async def spa_index(request: Request, slug: str | None = None) -> HTTPResponse:
        # sanic's file() sends "cache-control: no-cache" by default: revalidate the shell
        return await file_response(index, mime_type="text/html; charset=utf-8")

    bp.add_route(spa_index, "/", methods=["GET"], name="index")
    bp.add_route(spa_index, "/p/<slug:str>", methods=["GET"], name="product_page")
    bp.add_route(spa_index, "/slevy", methods=["GET"], name="deals_page")

    assets = dist / "assets"
    if assets.is_dir():
        bp.static("/assets", assets, name="assets")

    top_level = [
        p for p in sorted(dist.iterdir())
        if p.is_file() and p.name != "index.html" and p.name not in RESERVED
    ]
    for number, path in enumerate(top_level):
        bp.static(f"/{path.name}", path, name=f"file_{number}")
    return bp
