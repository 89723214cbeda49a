"""Fixtures for the reliability tests: our own Redis, `pricecat serve` subprocesses on the
session's fixture database, and helpers to read the fixture's published marts."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pricecat.config import Settings
from tests import helpers
from tests.reliability.procs import ApiServer, RedisServer, Resp

ALLOWED_ORIGIN = "https://allowed.example"

#: Response headers an API may use to say "served without Redis"; the contract only says
#: "says so in a response header" — `degraded()` accepts any of these.
DEGRADED_HEADERS = ("x-cache", "x-degraded", "x-cache-status", "x-pricecat-degraded")


def degraded(resp: Resp) -> bool:
    """True when the response says it was served without the cache (Redis down)."""
    for name in DEGRADED_HEADERS:
        value = (resp.header(name) or "").lower()
        if name == "x-cache" or name == "x-cache-status":
            if value in ("bypass", "degraded", "off", "unavailable", "error", "down"):
                return True
        elif value:
            return True
    return False


def api_env(settings: Settings, redis_url: str, **overrides: Any) -> dict[str, str]:
    """Environment for `pricecat serve` on `settings`' database with our own Redis and a fresh
    cache namespace (so instances never see each other's keys)."""
    env = {
        "DATABASE_URL": settings.database_url,
        "API_DATABASE_URL": settings.api_database_url,
        "REDIS_URL": redis_url,
        "CACHE_NAMESPACE": f"{settings.cache_namespace}:rel-{secrets.token_hex(3)}",
        "CORS_ORIGINS": ALLOWED_ORIGIN,
        "STATEMENT_TIMEOUT_MS": "5000",
        "RATE_LIMIT_PER_MINUTE": "0",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return env


@pytest.fixture(scope="session")
def rel_settings(fixture_settings: Settings) -> Settings:
    """The session fixture database (override: PRICECAT_TEST_DB, see tests/conftest.py)."""
    return fixture_settings


@pytest.fixture(scope="session")
def figures(output_dir: Path) -> Iterator[dict[str, Any]]:
    """Measured facts the tests record for docs/RELIABILITY.md (test-output/reliability.json)."""
    data: dict[str, Any] = {}
    yield data
    path = output_dir / "reliability.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(data)
    path.write_text(json.dumps(old, indent=2, default=str))


@pytest.fixture(scope="session")
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of our own for the whole session (tests that stop Redis start another)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def api(rel_settings: Settings, own_redis: RedisServer) -> Iterator[ApiServer]:
    """One `pricecat serve` on the fixture database (CORS allowlist set, rate limit off)."""
    with ApiServer(api_env(rel_settings, own_redis.url), name="session") as server:
        yield server


@pytest.fixture(scope="session")
def sample(rel_settings: Settings) -> dict[str, Any]:
    """A few real values from the fixture's published marts."""
    rows = helpers.fetch(
        rel_settings,
        "select slug, name from catalog.catalog_slug_summary order by slug",
    )
    cats = helpers.fetch(
        rel_settings,
        "select distinct unnest(categories) as c from catalog.catalog_slug_summary order by 1",
    )
    return {
        "slugs": [r["slug"] for r in rows],
        "slug": rows[0]["slug"],
        "name": rows[0]["name"],
        "categories": [r["c"] for r in cats],
    }


def assert_error_json(
    resp: Resp, status: int | tuple[int, ...], sent: str = ""
) -> dict[str, Any]:
    """The contract's error shape: {"error": {"code", "message", "details"}}, no leaks."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert resp.status in statuses, (resp.status, resp.text[:500])
    assert (resp.header("content-type") or "").startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    assert_no_leak(resp, sent)
    return body


LEAK_MARKERS = (
    "Traceback", "File \"/", ".py\", line", "asyncpg", "psycopg", "postgresql://",
    "redis://", "select ", "SELECT ", " from catalog", "syntax error", "Exception:",
    "sanic.exceptions", "UndefinedColumn", "relation \"",
)


def assert_no_leak(resp: Resp, sent: str = "") -> None:
    """No stack trace, driver name, SQL or connection string in a response body (markers that
    the request itself carried, e.g. an echoed SQL-injection string, don't count)."""
    text = resp.text
    for marker in LEAK_MARKERS:
        if marker.lower() in sent.lower():
            continue
        assert marker not in text, f"{marker!r} leaked in {resp.status} body: {text[:800]}"
