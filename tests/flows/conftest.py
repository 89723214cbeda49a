"""Fixtures for the refresh-flow tests: Prefect's test harness (one temporary Prefect server for
the session) and a throwaway database holding the hand-made raw snapshots, with no `catalog` yet."""

from __future__ import annotations

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
    with helpers.raw_fixture_database(base_settings, "pricecat_flow") as settings:
        yield settings
