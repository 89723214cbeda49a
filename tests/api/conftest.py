"""API test fixtures: real `pricecat serve` subprocesses over real sockets, against the session's
fixture database (marts built by dbt) and the shared Redis under a per-server namespace."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from redis import Redis

from pricecat.config import Settings
from tests.helpers import publish_new_build

REPO_ROOT = Path(__file__).resolve().parents[2]
PRICECAT = REPO_ROOT / ".venv" / "bin" / "pricecat"
ALLOWED_ORIGIN = "http://allowed.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ApiServer:
    url: str
    settings: Settings
    proc: subprocess.Popen[bytes]
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

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return parse_metrics(self.get("/metrics").text)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            labels = frozenset(_LABEL.findall(m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric_sum(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
               **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


@contextmanager
def run_server(
    settings: Settings,
    log_dir: Path,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    cleanup: bool = True,
) -> Iterator[ApiServer]:
    port = free_port()
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
    log_path = log_dir / f"api-server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(PRICECAT), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers)],
            env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            start_new_session=True,
        )
    server = ApiServer(f"http://127.0.0.1:{port}", settings, proc, log_path)
    try:
        _wait_until_up(server, workers)
        yield server
    finally:
        _stop(proc)
        if cleanup:
            _delete_namespace(settings)


def _wait_until_up(server: ApiServer, workers: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited:\n{server.log_path.read_text()[-4000:]}")
        try:
            if server.get("/healthz").status_code == 200:
                if workers == 1:
                    return
                samples = server.metrics()
                if metric_sum(samples, "pricecat_worker_up") >= workers:
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server did not come up:\n{server.log_path.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own process group (start_new_session)
            proc.wait(timeout=5)


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
    return replace(base, cache_namespace=ns, **changes)  # type: ignore[arg-type]


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
