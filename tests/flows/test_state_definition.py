"""The incremental state is rebuilt when its definition changes: `pricecat refresh` (a process of
its own, against a copy of the dbt project named by PRICECAT_PROJECT_DIR, reporting to the test
Prefect server) stores the hash of the state's definition files after each build; an unchanged
project then refreshes incrementally, an edited macro makes the next run a full rebuild.

What tells a full rebuild from an incremental run: `int_price_snapshots_arrived` (refresh_runs
.mart_rows) holds every raw row of the fixture on a full rebuild (all ids are above
`max(id) - snapshot_id_overlap`) and only the rows appended since on an incremental run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flows.changes import FULL_REBUILD_REASON, state_definition_hash
from pricecat.config import Settings
from pricecat.dbt import PROJECT_DIR
from tests import helpers
from tests.fixtures.snapshots import ROWS

#: what a dbt build needs from the repository
PROJECT_PARTS = ("dbt_project.yml", "profiles", "models", "macros", "seeds", "tests/dbt")
MAX_SCRAPED_AT = max(r["scraped_at"] for r in ROWS)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for part in PROJECT_PARTS:
        src, dest = PROJECT_DIR / part, root / part
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    return root


@pytest.fixture(scope="module")
def db(base_settings: Settings) -> Iterator[Settings]:
    with helpers.raw_fixture_database(base_settings, "pricecat_inc_definition") as settings:
        yield settings


def refresh(settings: Settings, project: Path) -> dict[str, Any]:
    """`pricecat refresh` against `project`; the run's refresh_runs row."""
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "API_DATABASE_URL": settings.api_database_url,
        "CACHE_NAMESPACE": settings.cache_namespace,
        "PRICECAT_PROJECT_DIR": str(project),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "pricecat"), "refresh"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    [row] = helpers.fetch(
        settings,
        "select status, mart_rows, (select definition_hash from catalog_state.state_definition)"
        " as stored from catalog_ops.refresh_runs order by run_id desc limit 1",
    )
    return {**dict(row), "log": proc.stdout + proc.stderr}


def append_row(settings: Settings, minutes: int) -> None:
    helpers.load_rows(settings, [{
        **ROWS[0], "scraped_at": MAX_SCRAPED_AT + timedelta(minutes=minutes),
        "price": Decimal("1.00") + minutes,
    }])


def arrived(run: dict[str, Any]) -> int:
    import json

    return int(json.loads(run["mart_rows"])["int_price_snapshots_arrived"])


def test_changed_state_definition_rebuilds_the_state(
    prefect_harness: None, db: Settings, project: Path
) -> None:
    first = refresh(db, project)
    assert first["status"] == "published"
    assert arrived(first) == len(ROWS)  # nothing built yet: every row
    original = state_definition_hash(project)
    assert first["stored"] == original
    assert original == state_definition_hash(PROJECT_DIR)  # the copy is the project

    # unchanged project, one new row: incremental (only that row arrives)
    append_row(db, 5)
    unchanged = refresh(db, project)
    assert unchanged["status"] == "published"
    assert arrived(unchanged) == 1
    assert FULL_REBUILD_REASON not in unchanged["log"]
    assert unchanged["stored"] == original

    # a macro changes (a comment is enough: the hash covers file contents), one new row: the
    # state is rebuilt from the whole history, every raw row arrives again
    macro = project / "macros" / "classify_availability.sql"
    macro.write_text(macro.read_text() + "\n{# changed by the test #}\n")
    changed = state_definition_hash(project)
    assert changed != original
    append_row(db, 10)
    rebuilt = refresh(db, project)
    assert rebuilt["status"] == "published"
    assert FULL_REBUILD_REASON in rebuilt["log"]
    assert arrived(rebuilt) == len(ROWS) + 2
    assert rebuilt["stored"] == changed

    # nothing new and the same definition: a no-op
    again = refresh(db, project)
    assert again["status"] == "noop"
    assert again["stored"] == changed

    # no stored hash while the state exists (a state built before this check): a full rebuild
    helpers.fetch(db, "drop table catalog_state.state_definition")
    missing = refresh(db, project)
    assert missing["status"] == "published"
    assert FULL_REBUILD_REASON in missing["log"]
    assert arrived(missing) == len(ROWS) + 2
    assert missing["stored"] == changed
