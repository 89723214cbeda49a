"""pricecat.priority: the refresh runs at a lower CPU priority, its Postgres backends too.

Against the real local Postgres: a connection that plays dbt's role (its application_name)
gets its backend reniced, other backends are left alone."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys

import asyncpg
import pytest

from pricecat import priority
from pricecat.config import ConfigError, Settings


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 10), ("", 10), ("0", 0), ("19", 19), (" 5 ", 5)]
)
def test_refresh_nice_from_env(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: int
) -> None:
    if raw is None:
        monkeypatch.delenv("REFRESH_NICE", raising=False)
    else:
        monkeypatch.setenv("REFRESH_NICE", raw)
    assert priority.refresh_nice() == expected


@pytest.mark.parametrize("raw", ["-1", "20", "ten", "1.5"])
def test_refresh_nice_rejects_out_of_range(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("REFRESH_NICE", raw)
    with pytest.raises(ConfigError, match="REFRESH_NICE"):
        priority.refresh_nice()


def test_lower_process_priority_only_raises_niceness() -> None:
    # in a child process: the test session itself keeps its priority
    code = (
        "import os; from pricecat.priority import lower_process_priority as l; "
        "a = l(7); b = l(3); print(a, b, os.getpriority(os.PRIO_PROCESS, 0))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    base = os.getpriority(os.PRIO_PROCESS, 0)
    want = max(base, 7)
    assert out == [str(want)] * 3


def _can_renice_others() -> bool:
    return os.geteuid() == 0


Scenario = tuple[int, int, int, int, priority.BackendRenicer]


async def _renice_scenario(settings: Settings) -> Scenario:
    app = f"pricecat-test-{secrets.token_hex(3)}"
    build = await asyncpg.connect(settings.database_url, server_settings={"application_name": app})
    other = await asyncpg.connect(settings.database_url)
    watcher = await asyncpg.connect(settings.database_url)
    try:
        build_pid = await build.fetchval("select pg_backend_pid()")
        other_pid = await other.fetchval("select pg_backend_pid()")
        before = os.getpriority(os.PRIO_PROCESS, build_pid)
        async with priority.BackendRenicer(watcher, 13, application_name=app, interval=0.05) as r:
            for _ in range(100):
                if build_pid in r.reniced or r.disabled:
                    break
                await asyncio.sleep(0.05)
            # the backend keeps working at its new priority
            assert await build.fetchval("select 1") == 1
        return (
            before,
            os.getpriority(os.PRIO_PROCESS, build_pid),
            os.getpriority(os.PRIO_PROCESS, other_pid),
            other_pid,
            r,
        )
    finally:
        for conn in (build, other, watcher):
            await conn.close()


@pytest.mark.skipif(not _can_renice_others(), reason="renicing Postgres backends needs root")
def test_backend_renicer_renices_only_the_builds_backends(fixture_settings: Settings) -> None:
    # any existing database will do (the default `pricecat` need not exist on a fresh machine)
    before, after, other, other_pid, renicer = asyncio.run(_renice_scenario(fixture_settings))
    assert renicer.disabled is None
    assert before < 13
    assert after == 13
    assert other == before  # another client's backend keeps its priority
    assert other_pid not in renicer.reniced


def test_backend_renicer_off_with_nice_zero(fixture_settings: Settings) -> None:
    async def go() -> priority.BackendRenicer:
        watcher = await asyncpg.connect(fixture_settings.database_url)
        try:
            async with priority.BackendRenicer(watcher, 0) as r:
                await asyncio.sleep(0.05)
            return r
        finally:
            await watcher.close()

    renicer = asyncio.run(go())
    assert renicer.disabled == "REFRESH_NICE=0"
    assert renicer.reniced == set()


def test_renice_backend_refuses_non_postgres_processes() -> None:
    # our own PID is no postgres backend: a PID from another host's pg_stat_activity that
    # happens to exist here must never be touched
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert priority.renice_backend(child.pid, 12) is False
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        child.kill()
        child.wait()
    assert priority.renice_backend(2**22 + 12345, 12) is False  # no such process
