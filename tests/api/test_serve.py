"""`pricecat serve --workers 2` over a real socket: /metrics aggregates both worker processes;
the OpenAPI document describes every endpoint, parameter and response schema."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.procs import PRICECAT, free_port
from bench.prom import metric_sum, parse_metrics
from pricecat.config import Settings
from tests.api.conftest import ApiServer, run_server, server_settings


@pytest.fixture(scope="module")
def two_workers(db_settings: Settings, api_log_dir: Path) -> Iterator[ApiServer]:
    with run_server(server_settings(db_settings), api_log_dir, workers=2) as server:
        yield server


def test_metrics_aggregate_both_workers(two_workers: ApiServer) -> None:
    samples = two_workers.metrics()
    up = {dict(ls)["pid"] for (n, ls), v in samples.items() if n == "pricecat_worker_up" and v}
    assert len(up) == 2  # one live series per worker process, in one scrape
    before = metric_sum(samples, "pricecat_http_requests_total", route="/healthz")

    async def many() -> None:
        for _ in range(4):  # new connections, spread over both workers by the kernel
            async with httpx.AsyncClient(base_url=two_workers.url, timeout=20) as c:
                await asyncio.gather(*(c.get("/healthz") for _ in range(10)))

    asyncio.run(many())
    # every scrape (whichever worker answers it) sees the requests of both workers
    for _ in range(4):
        with httpx.Client(base_url=two_workers.url, timeout=20) as c:
            text = c.get("/metrics").text
        samples = parse_metrics(text)
        assert metric_sum(samples, "pricecat_http_requests_total", route="/healthz") - before == 40
    assert metric_sum(samples, "pricecat_db_pool_connections_max") == 8  # 2 workers x 4
    assert "pricecat_http_request_duration_seconds_bucket" in text
    assert "pricecat_data_age_seconds" in text
    assert metric_sum(samples, "pricecat_data_age_seconds") > 0
    # the fixture's four bad raw rows (tests/fixtures/expected.py QUARANTINED, by hand)
    assert metric_sum(samples, "pricecat_quarantined_rows") == 4


def test_single_flight_across_workers(two_workers: ApiServer) -> None:
    two_workers.bump_generation()
    before = metric_sum(two_workers.metrics(), "pricecat_db_queries_total", query="suggest")

    async def burst() -> list[httpx.Response]:
        async def one() -> httpx.Response:
            async with httpx.AsyncClient(base_url=two_workers.url, timeout=20) as c:
                return await c.get("/api/v1/search/suggest?q=kocka&limit=5")

        return await asyncio.gather(*(one() for _ in range(20)))

    responses = asyncio.run(burst())
    assert {r.status_code for r in responses} == {200}
    assert responses[0].json()["items"][0]["slug"] == "cerna-kocka"
    after = metric_sum(two_workers.metrics(), "pricecat_db_queries_total", query="suggest")
    assert after - before == 1


def test_openapi_documents_every_endpoint(api: ApiServer) -> None:
    spec = api.get("/docs/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v1/catalog", "/api/v1/products/{slug}", "/api/v1/search/suggest",
        "/api/v1/meta/categories", "/api/v1/snapshots/recent", "/healthz", "/readyz", "/metrics",
    ):
        assert "get" in paths[path], path
    params = {p["name"]: p for p in paths["/api/v1/catalog"]["get"]["parameters"]}
    assert set(params) == {
        "page", "page_size", "availability", "min_price", "max_price", "categories", "q", "sort",
    }
    assert params["page_size"]["schema"]["maximum"] == 100
    assert params["availability"]["schema"]["enum"] == ["any", "available", "preorder",
                                                        "unavailable"]
    assert all(p.get("description") for p in params.values())
    suggest = {p["name"]: p for p in paths["/api/v1/search/suggest"]["get"]["parameters"]}
    assert suggest["q"]["required"] is True
    slug = paths["/api/v1/products/{slug}"]["get"]["parameters"][0]
    assert slug["in"] == "path" and slug["name"] == "slug"
    schemas = spec["components"]["schemas"]
    card = schemas["CatalogCard"]["properties"]
    assert {"slug", "min_price", "categories", "last_scraped_at"} <= set(card)
    assert "price_points" in schemas["SellerOffer"]["properties"]
    assert set(schemas["ErrorInfo"]["properties"]) == {"code", "message", "details"}
    ok = paths["/api/v1/catalog"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/CatalogPage")
    assert "400" in paths["/api/v1/catalog"]["get"]["responses"]
    assert "404" in paths["/api/v1/products/{slug}"]["get"]["responses"]
    docs = api.get("/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text


def test_serve_fails_fast_on_a_wrong_database(db_settings: Settings) -> None:
    import os
    import subprocess

    env = dict(os.environ)
    env["DATABASE_URL"] = db_settings.database_url
    env["API_DATABASE_URL"] = db_settings.api_database_url.rsplit("/", 1)[0] + "/no_such_db_x"
    proc = subprocess.run(
        [PRICECAT, "serve", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "no_such_db_x" in proc.stderr and "Traceback" not in proc.stderr


def test_disconnects_and_shutdown_leave_no_noise(db_settings: Settings, api_log_dir: Path) -> None:
    """Clients that hang up mid-request are not errors (sanic's RequestCancelled is logged at
    debug only), and stopping the server closes the pools without 'Event loop is closed'."""
    import socket

    with run_server(server_settings(db_settings), api_log_dir, workers=2) as server:
        host, port = server.url.removeprefix("http://").split(":")
        for n in range(40):  # distinct, uncached: each request has a load to cancel
            with socket.create_connection((host, int(port))) as s:
                s.sendall(
                    f"GET /api/v1/catalog?page={n + 2}&page_size=3 HTTP/1.1\r\n"
                    f"Host: {host}\r\n\r\n".encode()
                )
        ok = server.get("/api/v1/catalog", params={"page": 2, "page_size": 3})
        assert ok.status_code == 200 and len(ok.json()["items"]) == 3
        log_path = server.log_path
    log = log_path.read_text()
    for noise in ("RequestCancelled", "unhandled error", "Event loop is closed",
                  "Exception ignored", "Traceback"):
        assert noise not in log, (noise, log[-3000:])
    assert log.count("Worker complete") == 2
