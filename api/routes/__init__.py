"""HTTP layer: parse/validate -> call api.reads -> respond. No SQL, no cache logic here."""

from __future__ import annotations

from sanic import Request

from api.cache import Cache
from api.db import Database


def get_database(request: Request) -> Database:
    """sanic-ext dependency: the worker's pool wrapper, created in before_server_start."""
    db: Database = request.app.ctx.db
    return db


def get_cache(request: Request) -> Cache:
    """sanic-ext dependency: the worker's cache (Redis pool + in-process layer)."""
    cache: Cache = request.app.ctx.cache
    return cache
