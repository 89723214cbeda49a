"""Session fixtures: real Postgres and Redis, a throwaway database per session holding the
hand-made fixture (tests/fixtures/snapshots.py) and the marts built by a real dbt run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pricecat.config import Settings, parse_database_url
from tests import helpers

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = REPO_ROOT / "test-output"


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    settings = Settings.from_env()
    pg = parse_database_url(settings.database_url)
    helpers.wait_for_port(pg.host, pg.port)
    redis = urlsplit(settings.redis_url)
    helpers.wait_for_port(redis.hostname or "127.0.0.1", redis.port or 6379)
    return settings


@pytest.fixture(scope="session")
def fixture_settings(base_settings: Settings) -> Iterator[Settings]:
    """A fresh database with the hand-made fixture loaded and the marts built into `catalog`.

    For quick local iterations, PRICECAT_TEST_DB names an existing database that already holds
    the fixture and its built marts (e.g. one kept with PRICECAT_KEEP_TEST_DB=1); it is reused
    as is and never dropped.
    """
    from tests.fixtures.snapshots import ROWS

    existing = os.environ.get("PRICECAT_TEST_DB")
    if existing:
        yield helpers.settings_for_database(base_settings, existing)
        return
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name())
    helpers.create_database(settings)
    try:
        helpers.load_rows(settings, ROWS)
        helpers.dbt_build_into(settings, "catalog")
        yield settings
    finally:
        if not os.environ.get("PRICECAT_KEEP_TEST_DB"):
            helpers.drop_database(settings)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR
