"""A Redis that accepts connections and never answers (a hung host, a dead route): each request
pays at most the Redis timeout (API_REDIS_TIMEOUT, 0.5 s) while the circuit breaker is closed,
and nothing while it is open. Requests stream for several breaker periods (1 s each) and every
one must answer 200 within the timeout plus half a second for its own query."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pricecat.config import Settings
from tests.api.conftest import run_server, server_settings


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A TCP listener that accepts every connection and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)  # keep it open, read nothing, answer nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


def test_hung_redis_costs_each_request_under_a_second(
    db_settings: Settings, api_log_dir: Path, silent_redis: str
) -> None:
    settings = server_settings(db_settings, redis_url=silent_redis)
    paths = ["/api/v1/products/azul", "/api/v1/catalog?page_size=5", "/api/v1/meta/categories"]
    with run_server(settings, api_log_dir) as server, server.client() as client:
        took: list[float] = []
        statuses: list[int] = []
        end = time.monotonic() + 4.0  # four breaker periods
        i = 0
        while time.monotonic() < end:
            started = time.perf_counter()
            r = client.get(paths[i % len(paths)])
            took.append(time.perf_counter() - started)
            statuses.append(r.status_code)
            assert r.headers.get("x-cache") == "bypass", r.headers
            i += 1
        ready = client.get("/readyz")
    assert set(statuses) == {200}
    assert len(took) >= 8
    # a request pays at most one Redis timeout plus its own query
    assert max(took) < settings.redis_timeout + 0.5, sorted(took)[-5:]
    # ... and most pay nothing: the breaker skips the hung Redis for a second after a timeout
    assert sorted(took)[len(took) // 2] < settings.redis_timeout / 2, sorted(took)
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
