"""api.* log lines from Sanic's worker processes reach the operator with time, level and logger
(plain text, or one JSON object per line with LOG_FORMAT=json), and every 5xx line names the
request id that the response carries in X-Request-ID."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pricecat.config import Settings
from tests.api.conftest import free_port, run_server, server_settings

PLAIN_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING api\.errors \[\d+\]: "
    r"503 database_unavailable on .*/api/v1/catalog\?page=3.* \(request (?P<rid>[0-9a-f-]+), "
)


def _lines_until(path: Path, found: Callable[[list[str]], bool]) -> list[str]:
    """The log's lines once ``found`` holds for them (the worker writes them as it goes)."""
    deadline = time.monotonic() + 10
    while True:
        lines = path.read_text().splitlines()
        if found(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def _postgres_down(db_settings: Settings) -> Settings:
    return server_settings(
        db_settings, api_database_url=f"postgresql://pricecat_api@127.0.0.1:{free_port()}/x"
    )


def test_plain_lines_have_time_level_logger_and_request_id(
    db_settings: Settings, api_log_dir: Path
) -> None:
    with run_server(_postgres_down(db_settings), api_log_dir, workers=2) as server:
        r = server.get("/api/v1/catalog", params={"page": 3})
        assert r.status_code == 503
        request_id = r.headers["x-request-id"]
        lines = _lines_until(server.log_path, lambda ls: any(request_id in x for x in ls))
    matches = [m for m in map(PLAIN_LINE.match, lines) if m]
    assert [m["rid"] for m in matches] == [request_id], lines[-20:]


@pytest.mark.parametrize("workers", [1])
def test_json_lines_with_log_format_json(
    db_settings: Settings, api_log_dir: Path, workers: int
) -> None:
    env = {"LOG_FORMAT": "json"}
    with run_server(_postgres_down(db_settings), api_log_dir, workers=workers, env=env) as server:
        sent_id = "3f2b8c1e-0000-4000-8000-00000000abcd"
        r = server.get("/api/v1/catalog", params={"page": 3}, headers={"X-Request-ID": sent_id})
        assert r.status_code == 503 and r.headers["x-request-id"] == sent_id
        records = []
        for line in _lines_until(server.log_path, lambda ls: any(sent_id in x for x in ls)):
            if line.startswith("{"):
                records.append(json.loads(line))
    [record] = [x for x in records if x.get("logger") == "api.errors"]
    assert record["level"] == "WARNING"
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", record["time"])
    assert "503 database_unavailable" in record["message"]
    assert f"request {sent_id}" in record["message"]
    assert isinstance(record["process"], int)
