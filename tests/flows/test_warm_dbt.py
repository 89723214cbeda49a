"""The refresh flow with a warm dbt (DBT_FORK_SERVER, pricecat/dbt_server.py): it publishes what
the plain subprocess publishes, a failing node still publishes nothing, and a server that does not
answer only costs the warm start (the run falls back to a subprocess)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from flows.refresh import run_refresh, run_refresh_cli
from pricecat.config import Settings
from tests import helpers
from tests.flows.sources import broken_source

LAST_RUN_SQL = "select * from catalog_ops.refresh_runs order by run_id desc limit 1"
#: the marts that do not depend on the run's clock (the deals models read `as_of`, by default
#: the run's start: tests/pricecat/test_dbt_server.py compares those with as_of fixed)
MARTS = ("catalog_slug_summary", "catalog_slug_seller_summary", "catalog_availability_unmatched")


@pytest.fixture(scope="module")
def warm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    tmp = tmp_path_factory.mktemp("warm-flow")
    proc = helpers.start_dbt_server(tmp / "dbt.sock", tmp / "server.log")
    yield tmp / "dbt.sock", tmp / "server.log"
    helpers.stop_process(proc)


@pytest.fixture(scope="module")
def warm_db(base_settings: Settings) -> Iterator[Settings]:
    with helpers.raw_fixture_database(base_settings, "pricecat_warmflow") as settings:
        yield settings


def published(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    return {
        mart: [
            tuple(r)
            for r in helpers.fetch(settings, f"select * from catalog.{mart} order by 1, 2")  # noqa: S608
        ]
        for mart in MARTS
    }


def forked_builds(log: Path) -> int:
    return log.read_text().count("runs dbt build")


def test_warm_refresh_publishes_what_a_subprocess_refresh_publishes(
    prefect_harness: None, warm_server: tuple[Path, Path], warm_db: Settings
) -> None:
    socket, log = warm_server
    cold = warm_db.model_copy(update={"dbt_fork_server": "off"})
    warm = warm_db.model_copy(update={"dbt_fork_server": str(socket)})

    assert run_refresh(cold, full=True).is_completed()
    by_subprocess = published(warm_db)
    assert forked_builds(log) == 0

    assert run_refresh(warm, full=True).is_completed()
    assert forked_builds(log) == 1
    assert published(warm_db) == by_subprocess
    assert by_subprocess["catalog_slug_summary"]


def test_warm_failing_node_publishes_nothing(
    prefect_harness: None, warm_server: tuple[Path, Path], warm_db: Settings
) -> None:
    socket, log = warm_server
    warm = warm_db.model_copy(update={"dbt_fork_server": str(socket)})
    before = published(warm_db)
    builds = forked_builds(log)
    with broken_source(warm_db):
        assert run_refresh_cli(warm, SimpleNamespace(full=True)) == 1
    assert forked_builds(log) == builds + 1
    assert published(warm_db) == before
    run = helpers.fetch(warm_db, LAST_RUN_SQL)[0]
    assert run["status"] == "failed"
    assert "stg_scraper__product_price_snapshots" in run["error"]


def test_a_server_that_does_not_answer_falls_back_to_a_subprocess(
    prefect_harness: None, warm_db: Settings, tmp_path: Path
) -> None:
    gone = warm_db.model_copy(update={"dbt_fork_server": str(tmp_path / "nobody.sock")})
    assert run_refresh(gone, full=True).is_completed()
    run = helpers.fetch(warm_db, LAST_RUN_SQL)[0]
    assert run["status"] == "published"
