"""Fixtures for the refresh-flow tests: Prefect's test harness (one temporary Prefect server for
the session) and a throwaway database holding the hand-made raw snapshots, with no `catalog` yet."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pricecat.config import Settings
from tests import helpers


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def flow_settings(base_settings: Settings) -> Iterator[Settings]:
    """A fresh database with the raw fixture rows loaded and migrated, but nothing published."""
    from tests.fixtures.snapshots import ROWS

    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_flow"))
    helpers.create_database(settings)
    try:
        helpers.load_rows(settings, ROWS)
        yield settings
    finally:
        if not os.environ.get("PRICECAT_KEEP_TEST_DB"):
            helpers.drop_database(settings)
