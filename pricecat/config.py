"""Settings read from the environment only (DATABASE_URL, REDIS_URL and a few optional knobs)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/pricecat"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

#: Schema the API reads; the refresh flow swaps a freshly built schema in under this name.
PUBLISHED_SCHEMA = "catalog"
#: Schema dbt builds into before the audit (tests) passes.
BUILD_SCHEMA = "catalog_build"
#: Schema for run bookkeeping that must survive schema swaps (refresh_runs).
OPS_SCHEMA = "catalog_ops"
#: Read-only role the API connects as.
API_ROLE = "pricecat_api"


class ConfigError(ValueError):
    """A setting from the environment is unusable."""


@dataclass(frozen=True)
class PgParts:
    host: str
    port: int
    user: str
    password: str
    dbname: str


def parse_database_url(url: str) -> PgParts:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(
            f"DATABASE_URL must start with postgresql:// (got scheme {parts.scheme!r})"
        )
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise ConfigError("DATABASE_URL must name a database, e.g. postgresql://user@host:5432/pricecat")
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL has an invalid port: {exc}") from exc
    return PgParts(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        dbname=dbname,
    )


def with_database(url: str, dbname: str) -> str:
    """The same URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def with_user(url: str, user: str) -> str:
    """The same URL with another user (and no password: trust or a password in the env)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Integer setting ``name`` from the environment (unset or empty: ``default``)."""
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    low = "" if minimum is None else f" >= {minimum}"
    high = "" if maximum is None else f" <= {maximum}"
    rule = f"{name} must be an integer{low}{' and' if low and high else ''}{high}"
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{rule} (got {raw!r})") from exc
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(f"{rule} (got {raw!r})")
    return value


def env_float(name: str, default: float) -> float:
    """Number setting ``name`` from the environment (unset or empty: ``default``)."""
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number (got {raw!r})") from exc


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    #: URL the API uses (read-only role where configured); defaults to DATABASE_URL.
    api_database_url: str = DEFAULT_DATABASE_URL
    #: Where the API reads while API_DATABASE_URL (e.g. a replica) is unreachable; None = nowhere.
    api_database_fallback_url: str | None = None
    redis_url: str = DEFAULT_REDIS_URL
    #: Prefix of every Redis key; defaults to the database name so databases never share caches.
    cache_namespace: str = "pricecat"
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    statement_timeout_ms: int = 5000
    #: Requests per client per minute; 0 disables rate limiting.
    rate_limit_per_minute: int = 0

    @classmethod
    def from_env(cls) -> Settings:
        database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        pg = parse_database_url(database_url)
        api_url = os.environ.get("API_DATABASE_URL") or database_url
        parse_database_url(api_url)
        fallback_url = os.environ.get("API_DATABASE_FALLBACK_URL") or None
        if fallback_url:
            parse_database_url(fallback_url)
        redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
        if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"REDIS_URL must start with redis:// (got {redis_url!r})")
        origins = tuple(
            o.strip() for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()
        )
        return cls(
            database_url=database_url,
            api_database_url=api_url,
            api_database_fallback_url=fallback_url,
            redis_url=redis_url,
            cache_namespace=os.environ.get("CACHE_NAMESPACE") or f"pricecat:{pg.dbname}",
            cors_origins=origins,
            statement_timeout_ms=env_int("STATEMENT_TIMEOUT_MS", 5000),
            rate_limit_per_minute=env_int("RATE_LIMIT_PER_MINUTE", 0),
        )
