"""API test fixtures: real `pricecat serve` subprocesses over real sockets, against the session's
fixture database (marts built by dbt) and the shared Redis under a per-server namespace."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis import Redis

from bench.procs import Service, free_port, pricecat_serve
from bench.prom import Samples, metric_sum, parse_metrics
from pricecat.config import Settings
from tests.helpers import publish_new_build

ALLOWED_ORIGIN = "http://allowed.example"


@dataclass
class ApiServer:
    url: str
    settings: Settings
    service: Service
    log_path: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20.0, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        with self.client() as c:
            return c.get(path, **kwargs)  # type: ignore[arg-type]

    def bump_generation(self) -> int:
        """A fresh key space, as after a publish: the published build gets a new id (the data
        stays), so the next request of any key is a miss. Affects every server on this
        database."""
        return publish_new_build(self.settings)

    def metrics(self) -> Samples:
        return parse_metrics(self.get("/metrics").text)


@contextmanager
def run_server(
    settings: Settings,
    log_dir: Path,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    cleanup: bool = True,
) -> Iterator[ApiServer]:
    full_env = dict(os.environ)
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    full_env.update(
        {
            "DATABASE_URL": settings.database_url,
            "API_DATABASE_URL": settings.api_database_url,
            "REDIS_URL": settings.redis_url,
            "CACHE_NAMESPACE": settings.cache_namespace,
            "CORS_ORIGINS": ",".join(settings.cors_origins),
            "STATEMENT_TIMEOUT_MS": str(settings.statement_timeout_ms),
            "RATE_LIMIT_PER_MINUTE": str(settings.rate_limit_per_minute),
            "API_GENERATION_CHECK_SECONDS": "0",
            "API_DB_POOL_MIN": "1",
            "API_DB_POOL_MAX": "4",
        }
    )
    full_env.update(env or {})
    port = free_port()
    service, url = pricecat_serve(log_dir / f"api-server-{port}.log", full_env, workers=workers,
                                  port=port)
    server = ApiServer(url, settings, service, service.log_path)
    try:
        service.start()
        service.wait_ready(lambda: _up(server, workers), 60, "/healthz and every worker's metrics")
        yield server
    finally:
        service.stop()
        if cleanup:
            _delete_namespace(settings)


def _up(server: ApiServer, workers: int) -> bool:
    try:
        if server.get("/healthz").status_code != 200:
            return False
        return workers == 1 or metric_sum(server.metrics(), "pricecat_worker_up") >= workers
    except httpx.HTTPError:
        return False


def _delete_namespace(settings: Settings) -> None:
    try:
        r = Redis.from_url(settings.redis_url)
        for key in r.scan_iter(match=f"{settings.cache_namespace}:*", count=500):
            r.delete(key)
        r.close()
    except Exception:  # noqa: BLE001,S110 - cleanup only
        pass


def server_settings(base: Settings, **changes: object) -> Settings:
    """The session's settings with a private cache namespace (plus any changes)."""
    ns = f"{base.cache_namespace}:api-{secrets.token_hex(3)}"
    return base.model_copy(update={"cache_namespace": ns, **changes})


@pytest.fixture(scope="session")
def db_settings(fixture_settings: Settings) -> Settings:
    """The session fixture database (override: PRICECAT_TEST_DB, see tests/conftest.py)."""
    return fixture_settings


@pytest.fixture(scope="session")
def api_log_dir(output_dir: Path) -> Path:
    path = output_dir / "api"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def api(db_settings: Settings, api_log_dir: Path) -> Iterator[ApiServer]:
    """The main server: 1 worker, CORS for ALLOWED_ORIGIN, generation read on every request."""
    settings = server_settings(db_settings, cors_origins=(ALLOWED_ORIGIN,))
    with run_server(settings, api_log_dir) as server:
        yield server
