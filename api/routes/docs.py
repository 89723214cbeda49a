"""Shared OpenAPI fragments for the route modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sanic_ext import openapi
from sanic_ext.extensions.openapi.definitions import Component

from api import schemas

POLICY = (
    " Unknown query parameters and repeated parameters are rejected with 400 "
    "(codes unknown_parameter, repeated_parameter); an empty value counts as absent "
    "(allowEmptyValue on every optional parameter)."
)
CACHE_HEADERS = (
    " Responses carry a strong ETag (If-None-Match -> 304), Cache-Control: public, "
    "max-age=<TTL>, and X-Cache: hit | miss | bypass | stale (bypass = Redis unreachable, "
    "answered from Postgres; stale = Postgres unavailable, answered from the previous data "
    "generation). Within one data generation an entry past its TTL is still answered at once "
    "while one background refresh reloads it. X-Pricecat-Generation: the data generation "
    "(published build id) the answer is from; absent on stale answers."
)
F = TypeVar("F", bound=Callable[..., Any])


def string(**kwargs: Any) -> Any:
    return openapi.String(**kwargs)  # type: ignore[no-untyped-call]


def integer(**kwargs: Any) -> Any:
    return openapi.Integer(**kwargs)  # type: ignore[no-untyped-call]


def number(**kwargs: Any) -> Any:
    return openapi.Float(**kwargs)  # type: ignore[no-untyped-call]


AVAILABILITY = string(enum=["any", "available", "preorder", "unavailable"], default="any")


def json_of(model: type[Any]) -> dict[str, Any]:
    return {"application/json": Component(model)}


def error_responses(*statuses: int) -> list[Any]:
    texts = {
        400: "A parameter is invalid; details.parameter names it",
        404: "Not found",
        429: "Rate limited (Retry-After header)",
        503: (
            "Not cached and Postgres unreachable (database_unavailable), a statement timed "
            "out (database_timeout) or no connection was free for 10 s (database_busy, "
            "Retry-After)"
        ),
    }
    return [
        openapi.response(s, json_of(schemas.Error), texts[s]) for s in (*statuses, 429, 503)
    ]


def apply(*decorators: Any) -> Callable[[F], F]:
    """Stack sanic-ext OpenAPI decorators without losing the handler's type."""

    def inner(func: F) -> F:
        wrapped: Any = func
        for decorator in reversed(decorators):
            wrapped = decorator(wrapped)
        return func

    return inner


def page_parameters() -> tuple[Any, Any]:
    """`page` and `page_size` as every paginated listing (catalog, deals) takes them."""
    return (
        openapi.parameter(
            "page", integer(minimum=1, maximum=100000, default=1), "query", allowEmptyValue=True,
            description="1-based page number; a page past the end returns no items",
        ),
        openapi.parameter(
            "page_size", integer(minimum=1, maximum=100, default=24), "query",
            allowEmptyValue=True, description="Items per page",
        ),
    )
