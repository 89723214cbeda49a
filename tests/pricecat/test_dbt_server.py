"""The warm dbt (pricecat/dbt_server.py): a forked child behaves as a `dbt` subprocess would.

Real Postgres and dbt, a real fork server process. The second formulation every answer is
checked against is a plain `dbt` subprocess (pricecat/dbt.py) on the same database.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.build import build_args
from pricecat.config import Settings
from pricecat.dbt import PROJECT_DIR, dbt_command, dbt_env
from pricecat.dbt_server import ForkedDbt
from tests import helpers

#: the deals models read `as_of`; both formulations get the same one
AS_OF = "2025-03-01T12:00:00+00:00"
PROBE_SQL = "select probe from probe_build.catalog_build_info"
PROJECT_FILES = ("models", "macros", "seeds", "tests/dbt", "profiles", "dbt_project.yml")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fork server started with an environment that points dbt elsewhere: a child that kept
    the server's environment would fail to connect (a database that does not exist) rather than
    build anywhere real, and name `server_env_schema`."""
    tmp = tmp_path_factory.mktemp("dbt-server")
    path = tmp / "dbt.sock"
    proc = helpers.start_dbt_server(
        path, tmp / "server.log", PRICECAT_DBT_SCHEMA="server_env_schema",
        PRICECAT_PGDATABASE="pricecat_no_such_database",
        PRICECAT_DBT_APPLICATION_NAME="server-env",
    )
    yield path
    helpers.stop_process(proc)


@pytest.fixture(scope="module")
def raw_db(base_settings: Settings) -> Iterator[Settings]:
    with helpers.raw_fixture_database(base_settings, "pricecat_warm") as settings:
        yield settings


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the dbt project that a test may edit."""
    dest = tmp_path / "project"
    for name in PROJECT_FILES:
        src = PROJECT_DIR / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / name)
    return dest


def project_args(args: list[str], project: Path, target: Path) -> list[str]:
    return [*args, "--project-dir", str(project), "--profiles-dir", str(project / "profiles"),
            "--target-path", str(target), "--log-path", str(target), "--no-use-colors"]


async def _warm(server: Path, args: list[str], env: dict[str, str], cwd: str) -> tuple[int, str]:
    proc = await ForkedDbt.start(str(server), args, env, cwd)
    out = [raw.decode() async for raw in proc.lines()]
    return await proc.wait(), "".join(out)


def warm(server: Path, settings: Settings, schema: str, args: list[str]) -> tuple[int, str]:
    return asyncio.run(_warm(server, args, dbt_env(settings, schema), str(PROJECT_DIR)))


def cold(settings: Settings, schema: str, args: list[str]) -> tuple[int, str]:
    proc = subprocess.run(
        [dbt_command([])[0], *args], env=dbt_env(settings, schema), cwd=PROJECT_DIR,
        capture_output=True, text=True, check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def relations(settings: Settings, schema: str) -> dict[str, str]:
    rows = helpers.fetch(
        settings,
        "select c.relname, c.relkind::text from pg_class as c join pg_namespace as n"
        " on n.oid = c.relnamespace where n.nspname = $1 and c.relkind in ('r', 'v')",
        schema,
    )
    return {r["relname"]: r["relkind"] for r in rows}


#: columns that name the build, not the data
BUILD_COLUMNS = ("build_id", "previous_build_id", "built_at", "merged_at")


def contents(settings: Settings, schema: str) -> dict[str, list[str]]:
    """Every table's rows (as json text, build-identity columns removed), sorted."""
    out: dict[str, list[str]] = {}
    for name, kind in relations(settings, schema).items():
        if kind != "r":
            continue
        drop = "".join(f" - '{c}'" for c in BUILD_COLUMNS)
        rows = helpers.fetch(
            settings,
            f'select (to_jsonb(t){drop})::text as j from "{schema}"."{name}" as t',  # noqa: S608
        )
        out[name] = sorted(r["j"] for r in rows)
    return out


def statuses(run_results: dict[str, Any]) -> dict[str, str]:
    return {r["unique_id"]: r["status"] for r in run_results["results"]}


def oid(settings: Settings, relation: str) -> int:
    return int(helpers.fetch(settings, "select to_regclass($1)::oid as o", relation)[0]["o"])


def test_warm_build_matches_a_dbt_subprocess(
    server: Path, raw_db: Settings, tmp_path: Path
) -> None:
    """The refresh's `dbt build` with --vars, forked by the server, builds what a `dbt`
    subprocess builds, in the schema its own environment names (not the server's); a later
    incremental run keeps the state table and --full-refresh replaces it."""

    def args(side: str, *extra: str) -> tuple[list[str], Path]:
        variables = {"as_of": AS_OF, "state_schema": f"{side}_state"}
        target = tmp_path / f"{side}-{len(extra)}"
        build = [*build_args(full=False), *extra, "--vars", json.dumps(variables)]
        return project_args(build, PROJECT_DIR, target), target

    warm_args, warm_target = args("warm")
    cold_args, cold_target = args("cold")
    rc, out = warm(server, raw_db, "warm_build", warm_args)
    assert rc == 0, out
    rc, out = cold(raw_db, "cold_build", cold_args)
    assert rc == 0, out

    assert relations(raw_db, "server_env_schema") == {}
    built = relations(raw_db, "warm_build")
    assert "catalog_slug_summary" in built and "catalog_slug_seller_deals" in built
    assert built == relations(raw_db, "cold_build")
    assert contents(raw_db, "warm_build") == contents(raw_db, "cold_build")
    assert contents(raw_db, "warm_state") == contents(raw_db, "cold_state")
    warm_results = json.loads((warm_target / "run_results.json").read_text())
    cold_results = json.loads((cold_target / "run_results.json").read_text())
    assert statuses(warm_results) == statuses(cold_results)
    assert set(statuses(warm_results).values()) == {"success", "pass"}
    assert warm_results["args"]["vars"] == {"as_of": AS_OF, "state_schema": "warm_state"}

    # incremental: the state table stays; --full-refresh rebuilds it (a new relation)
    state = "warm_state.int_seller_offers_merged"
    before = oid(raw_db, state)
    state_models = ("--select", "+int_seller_offers_merged")
    rc, out = warm(server, raw_db, "warm_build", args("warm", *state_models)[0])
    assert rc == 0, out
    assert oid(raw_db, state) == before
    rc, out = warm(server, raw_db, "warm_build", args("warm", *state_models, "--full-refresh")[0])
    assert rc == 0, out
    assert oid(raw_db, state) != before


def test_a_changed_project_file_is_read_by_the_next_run(
    server: Path, raw_db: Settings, project: Path, tmp_path: Path
) -> None:
    """Nothing of the project is kept in the server: an edited model and macro show in the next
    warm run (the same target path, so dbt's partial parse is in play)."""
    target = tmp_path / "target"
    args = project_args(["build", "--select", "catalog_build_info"], project, target)
    env = dbt_env(raw_db, "probe_build")

    rc, out = asyncio.run(_warm(server, args, env, str(project)))
    assert rc == 0, out
    columns = (
        "select column_name from information_schema.columns where table_schema = 'probe_build'"
    )
    assert "probe" not in {r["column_name"] for r in helpers.fetch(raw_db, columns)}

    model = project / "models/marts/catalog/catalog_build_info.sql"
    probe = "now() as built_at,\n        {{ probe_value() }} as probe"
    model.write_text(model.read_text().replace("now() as built_at", probe))
    (project / "macros/probe_value.sql").write_text("{% macro probe_value() %}41{% endmacro %}")
    rc, out = asyncio.run(_warm(server, args, env, str(project)))
    assert rc == 0, out
    assert helpers.fetch(raw_db, PROBE_SQL)[0]["probe"] == 41

    (project / "macros/probe_value.sql").write_text("{% macro probe_value() %}42{% endmacro %}")
    rc, out = asyncio.run(_warm(server, args, env, str(project)))
    assert rc == 0, out
    assert helpers.fetch(raw_db, PROBE_SQL)[0]["probe"] == 42


def _sleeping_project(project: Path) -> None:
    (project / "macros/sleep_a_while.sql").write_text(
        "{% macro sleep_a_while() %}{% do run_query('select pg_sleep(60)') %}{% endmacro %}"
    )


def gone(pid: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


async def _start_sleeper(
    server: Path, raw_db: Settings, project: Path, target: Path
) -> ForkedDbt:
    args = project_args(["run-operation", "sleep_a_while"], project, target)
    proc = await ForkedDbt.start(str(server), args, dbt_env(raw_db, "sleep_build"), str(project))
    async for raw in proc.lines():
        if b"Running with dbt" in raw:
            break
    return proc


def test_kill_and_a_vanished_client_stop_the_child(
    server: Path, raw_db: Settings, project: Path, tmp_path: Path
) -> None:
    _sleeping_project(project)

    async def killed() -> tuple[int, int]:
        proc = await _start_sleeper(server, raw_db, project, tmp_path / "a")
        await proc.kill()
        assert proc.returncode is not None
        return proc.pid, proc.returncode

    pid, code = asyncio.run(killed())
    assert code == -signal.SIGKILL
    assert gone(pid, 1.0)

    async def abandoned() -> int:
        proc = await _start_sleeper(server, raw_db, project, tmp_path / "b")
        proc.writer.transport.abort()  # as when the flow-run process is killed
        return proc.pid

    assert gone(asyncio.run(abandoned()))


def test_a_dying_server_takes_its_child_along(
    raw_db: Settings, project: Path, tmp_path: Path
) -> None:
    _sleeping_project(project)
    path = tmp_path / "own.sock"
    server = helpers.start_dbt_server(path, tmp_path / "own.log")
    try:
        async def run() -> tuple[int, BaseException | None]:
            proc = await _start_sleeper(path, raw_db, project, tmp_path / "t")
            server.kill()
            try:
                await proc.wait()
            except ConnectionError as exc:
                return proc.pid, exc
            return proc.pid, None

        pid, error = asyncio.run(run())
        assert isinstance(error, ConnectionError)
        assert gone(pid)
    finally:
        helpers.stop_process(server)

