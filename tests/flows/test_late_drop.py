"""The refresh drops a replaced schema late (flows/refresh.py): not right after its publish — a
hot-standby replica replaying that DROP would cancel reads still running on the old tables — but
at the start of a later run, always keeping the newest `catalog_old_*`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flows.refresh import run_refresh
from pricecat.config import Settings
from tests import helpers

OLDER = "catalog_old_20000101000000_1"
NEWER = "catalog_old_20000101000001_2"


@pytest.fixture(scope="module")
def late_settings(base_settings: Settings) -> Iterator[Settings]:
    with helpers.raw_fixture_database(base_settings, "pricecat_late") as settings:
        yield settings


def _schemas(settings: Settings) -> set[str]:
    rows = helpers.fetch(settings, "select nspname from pg_namespace where nspname like 'catalog%'")
    return {r["nspname"] for r in rows}


def test_old_schemas_are_dropped_by_a_later_run_keeping_the_newest(
    prefect_harness: None, late_settings: Settings
) -> None:
    for name in (OLDER, NEWER):  # left by two earlier publishes
        helpers.fetch(late_settings, f'create schema "{name}"')

    assert run_refresh(late_settings).is_completed()
    # cleanup at the start dropped the older one and kept the newest; nothing was replaced
    assert _schemas(late_settings) == {"catalog", "catalog_ops", "catalog_state", NEWER}

    assert run_refresh(late_settings, full=True).is_completed()  # nothing new: only --full builds
    after = _schemas(late_settings)
    replaced = sorted(n for n in after if n.startswith("catalog_old_") and n != NEWER)
    # the schema this publish replaced is still there (replicas may be reading it), and so is
    # the newest one at the start of the run; a third run would drop NEWER
    assert len(replaced) == 1, after
    assert after == {"catalog", "catalog_ops", "catalog_state", NEWER, replaced[0]}
