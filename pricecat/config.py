"""Settings read from the environment only: ``Settings`` declares every variable once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/pricecat"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REPO_ROOT = Path(__file__).resolve().parent.parent
#: REFRESH_NICE: the default niceness of refresh work, and the OS maximum
DEFAULT_NICE = 10
MAX_NICE = 19

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


def parse_database_url(url: str, name: str = "DATABASE_URL") -> PgParts:
    """Parts of a Postgres URL; ConfigError naming the variable ``name`` when unusable."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(f"{name} must start with postgresql:// (got scheme {parts.scheme!r})")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise ConfigError(f"{name} must name a database, e.g. postgresql://user@host:5432/pricecat")
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise ConfigError(f"{name} has an invalid port: {exc}") from exc
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


def _check_database_url(value: str, name: str) -> str:
    parse_database_url(value, name)
    return value


def _env(
    name: str,
    default: Any,
    help: str,
    *,
    shown: str | None = None,
    **bounds: Any,
) -> Any:
    """A field read from the env variable ``name`` (also settable by its field name); ``help``
    and ``shown`` (the default as the README tells it, when derived) feed the README table."""
    extra: dict[str, Any] = {"help": help}
    if shown is not None:
        extra["shown_default"] = shown
    return Field(
        default, validation_alias=name, description=help, json_schema_extra=extra, **bounds
    )


class Settings(BaseSettings):
    """Every setting of the CLI, the API, the refresh flow and the image proxy: one environment
    variable per field, declared here once with its default, bounds and help (the README's
    "Configuration" table is generated from it: ``python -m pricecat.config``). Unset or empty
    means the default. Frozen: derive a variant with ``settings.model_copy(update={...})``."""

    model_config = SettingsConfigDict(
        frozen=True,
        env_ignore_empty=True,
        case_sensitive=True,
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
    )

    # --- core: every command ---
    database_url: str = _env(
        "DATABASE_URL", DEFAULT_DATABASE_URL,
        "Postgres the CLI, dbt and the refresh write to (postgresql://user@host:port/db)",
    )
    redis_url: str = _env(
        "REDIS_URL", DEFAULT_REDIS_URL, "Redis of the API's shared cache (redis://, rediss://, unix://)"
    )
    cache_namespace: str = _env(
        "CACHE_NAMESPACE", "",
        "Prefix of every Redis key, so two databases never share cache entries",
        shown="pricecat:<database name>",
    )
    refresh_nice: int = _env(
        "REFRESH_NICE", DEFAULT_NICE,
        "Refresh: CPU niceness of the run, dbt and (when Postgres is local and the OS allows "
        "it) the build's Postgres backends, so API queries win the CPU during a build; 0 = off",
        ge=0, le=MAX_NICE,
    )
    refresh_runs_keep_days: int = _env(
        "REFRESH_RUNS_KEEP_DAYS", 30,
        "Refresh: days of catalog_ops.refresh_runs rows kept (one row per run, a run a minute); "
        "older rows are deleted at the start of each run, except the newest published run and "
        "the newest run that built",
        ge=1,
    )
    dbt_fork_server: str | None = _env(
        "DBT_FORK_SERVER", None,
        "Refresh: Unix socket of a warm dbt (`pricecat dbt-server`); unset: `pricecat schedule` "
        "starts one for its runs, `pricecat refresh` runs dbt as a plain subprocess (as when the "
        "socket does not answer); off = never a warm dbt",
    )
    # --- API ---
    api_database_url: str = _env(
        "API_DATABASE_URL", "",
        "Postgres the API reads (scripts/up.sh: the read-only role pricecat_api; a replica)",
        shown="DATABASE_URL",
    )
    api_database_fallback_url: str | None = _env(
        "API_DATABASE_FALLBACK_URL", None,
        "Where the API reads while API_DATABASE_URL (e.g. a replica) is unreachable; unset = "
        "nowhere",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = _env(
        "CORS_ORIGINS", (), "Comma-separated origins allowed by CORS (https://host[:port])",
        shown="empty (no CORS)",
    )
    statement_timeout_ms: int = _env(
        "STATEMENT_TIMEOUT_MS", 5000, "API: statement_timeout of its Postgres sessions (ms)",
        gt=0,
    )
    rate_limit_per_minute: int = _env(
        "RATE_LIMIT_PER_MINUTE", 0,
        "API: requests per client address per minute and worker on /api/*; 0 = off", ge=0,
    )
    db_pool_min: int = _env(
        "API_DB_POOL_MIN", 2, "API: Postgres pool size per worker, minimum", ge=1
    )
    #: 2 workers x 16 = 32 of Postgres' max_connections=100: room for dbt, the refresh flow,
    #: psql and a third worker; more connections than that only add contention on a small box
    db_pool_max: int = _env(
        "API_DB_POOL_MAX", 16, "API: Postgres pool size per worker, maximum", ge=1
    )
    db_acquire_timeout: float = _env(
        "API_DB_ACQUIRE_TIMEOUT", 10.0, "API: longest wait for a pooled connection (s)", gt=0
    )
    redis_max_connections: int = _env(
        "API_REDIS_MAX_CONNECTIONS", 256, "API: Redis connections per worker", ge=1
    )
    redis_pool_timeout: float = _env(
        "API_REDIS_POOL_TIMEOUT", 5.0, "API: longest wait for a pooled Redis connection (s)", gt=0
    )
    #: a Redis that accepts connections but never answers costs a request at most this (then
    #: the breaker skips Redis for a second). Not shorter: the timer also counts the worker's
    #: own event-loop lag, and at 0.1 s a saturated worker (1,000 connections on 2 cores, bench
    #: logs "redis unavailable: Timeout connecting") tripped the breaker on a healthy loopback
    #: Redis, sending cache lookups to Postgres exactly when it was busiest
    redis_timeout: float = _env(
        "API_REDIS_TIMEOUT", 0.5,
        "API: connect and reply timeout of one Redis call (s): a hung Redis costs a request at "
        "most this", gt=0, le=10,
    )
    generation_check_seconds: float = _env(
        "API_GENERATION_CHECK_SECONDS", 1.0,
        "API: how long a worker trusts the data generation it read (s); 0 = read it on every "
        "request", ge=0,
    )
    local_cache_entries: int = _env(
        "API_LOCAL_CACHE_ENTRIES", 25_000,
        "API: entries of the in-process cache per worker; 0 disables that layer", ge=0,
    )
    local_cache_mb: float = _env(
        "API_LOCAL_CACHE_MB", 160.0, "API: size bound of the in-process cache per worker (MiB)",
        ge=0,
    )
    cache_stale_seconds: int = _env(
        "API_CACHE_STALE_SECONDS", 600,
        "API: how long past its TTL an entry may still be served stale (s)", ge=0,
    )
    #: 1,000 clients connecting at once overflow Sanic's default 100, and a dropped SYN is
    #: retried after 1, 3, 7 s... (seen as timeouts by the clients)
    backlog: int = _env("API_BACKLOG", 2048, "API: listen backlog (`pricecat serve` only)", ge=1)
    access_log: bool = _env("API_ACCESS_LOG", False, "API: Sanic's access log (1/0)")
    log_format: Literal["plain", "json"] = _env(
        "LOG_FORMAT", "plain", "API log lines (api.*, every worker): plain, or json (one object "
        "per line)",
    )
    web_dist: Path = _env(
        "WEB_DIST_DIR", REPO_ROOT / "web" / "dist", "API: the built web UI it serves at /",
        shown="web/dist",
    )
    image_proxy_allow_private: bool = _env(
        "IMAGE_PROXY_ALLOW_PRIVATE", False,
        "API image proxy: also fetch from loopback/private addresses (tests, local mirrors); "
        "0 = public addresses only",
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return _check_database_url(value, "DATABASE_URL")

    @field_validator("api_database_url")
    @classmethod
    def _api_database_url(cls, value: str) -> str:
        return _check_database_url(value, "API_DATABASE_URL") if value else value

    @field_validator("api_database_fallback_url")
    @classmethod
    def _fallback_url(cls, value: str | None) -> str | None:
        return _check_database_url(value, "API_DATABASE_FALLBACK_URL") if value else None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"REDIS_URL must start with redis:// (got {value!r})")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o.strip() for o in value.split(",") if o.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(
                    f"CORS_ORIGINS entries must look like https://host[:port] (got {origin!r})"
                )
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        # frozen: the derived defaults are filled in place, once, while validating
        if not self.api_database_url:
            self.__dict__["api_database_url"] = self.database_url
        if not self.cache_namespace:
            dbname = parse_database_url(self.database_url).dbname
            self.__dict__["cache_namespace"] = f"pricecat:{dbname}"
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("need 1 <= API_DB_POOL_MIN <= API_DB_POOL_MAX")
        return self

    @classmethod
    def from_env(cls) -> Settings:
        """The settings in the environment; ConfigError naming the variable on a bad value."""
        try:
            return cls()
        except ValidationError as exc:
            raise ConfigError(_explain(exc)) from None

    def checked(self) -> Settings:
        """Validate again (a ``model_copy(update=...)`` skips validation); ConfigError naming
        the variable on a bad value."""
        try:
            return type(self).model_validate(self.model_dump())
        except ValidationError as exc:
            raise ConfigError(_explain(exc)) from None


def env_names() -> dict[str, str]:
    """Field name -> its environment variable."""
    return {name: str(f.validation_alias) for name, f in Settings.model_fields.items()}


def _explain(exc: ValidationError) -> str:
    """One line per bad value, each naming its environment variable."""
    names = env_names()
    lines = []
    for err in exc.errors():
        loc = err.get("loc") or ()
        var = names.get(str(loc[0]), str(loc[0])) if loc else ""
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if var and not msg.startswith(var):
            got = err.get("input")
            msg = f"{var}: {msg}" + ("" if isinstance(got, dict) else f" (got {got!r})")
        lines.append(msg)
    return "; ".join(lines)


def _shown_default(name: str) -> str:
    field = Settings.model_fields[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "shown_default" in extra:
        return str(extra["shown_default"])
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "1" if value else "0"
    return f"`{value}`"


def _bounds(name: str) -> str:
    field = Settings.model_fields[name]
    parts = []
    for meta in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                parts.append(f"{sign} {bound}")
    args = getattr(field.annotation, "__args__", ())
    if args and all(isinstance(a, str) for a in args):  # Literal
        parts.append(" or ".join(args))
    return ", ".join(parts)


def markdown_table() -> str:
    """The README's "Configuration" table: one row per field of Settings."""
    rows = ["| variable | default | allowed | what |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        shown = _shown_default(name)
        if not shown.startswith("`") and shown not in ("unset",) and "(" not in shown:
            shown = f"`{shown}`"
        rows.append(
            f"| `{field.validation_alias}` | {shown} | {_bounds(name)} | {field.description} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
