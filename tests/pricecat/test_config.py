"""pricecat.config.Settings: every env variable declared once (default, bounds, help), a bad value
stops start-up naming the variable, and README.md's table is the one generated from it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from bench.procs import PRICECAT
from pricecat.config import ConfigError, Settings, env_names, markdown_table

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in env_names().values():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_and_derived_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql://alice@db.example:6543/shop")
    s = Settings.from_env()
    assert s.api_database_url == "postgresql://alice@db.example:6543/shop"
    assert s.cache_namespace == "pricecat:shop"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert (s.db_pool_min, s.db_pool_max, s.redis_timeout, s.refresh_nice) == (2, 16, 0.5, 10)
    assert s.cors_origins == () and s.api_database_fallback_url is None
    assert s.image_proxy_allow_private is False and s.log_format == "plain"


def test_values_from_the_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CORS_ORIGINS", " https://a.example , http://b.example:8080,")
    clean_env.setenv("API_DB_POOL_MAX", "4")
    clean_env.setenv("API_REDIS_TIMEOUT", "0.25")
    clean_env.setenv("LOG_FORMAT", " JSON ")
    clean_env.setenv("IMAGE_PROXY_ALLOW_PRIVATE", "1")
    clean_env.setenv("API_ACCESS_LOG", "")  # empty = the default
    clean_env.setenv("CACHE_NAMESPACE", "ns1")
    s = Settings.from_env()
    assert s.cors_origins == ("https://a.example", "http://b.example:8080")
    assert (s.db_pool_max, s.redis_timeout, s.log_format) == (4, 0.25, "json")
    assert s.image_proxy_allow_private is True and s.access_log is False
    assert s.cache_namespace == "ns1"


@pytest.mark.parametrize(
    ("name", "raw", "says"),
    [
        ("API_DB_POOL_MIN", "0", "greater than or equal to 1"),
        ("API_DB_POOL_MAX", "many", "valid integer"),
        ("API_REDIS_TIMEOUT", "11", "less than or equal to 10"),
        ("STATEMENT_TIMEOUT_MS", "0", "greater than 0"),
        ("RATE_LIMIT_PER_MINUTE", "-1", "greater than or equal to 0"),
        ("LOG_FORMAT", "xml", "'plain' or 'json'"),
        ("IMAGE_PROXY_ALLOW_PRIVATE", "perhaps", "valid boolean"),
        ("REFRESH_NICE", "20", "less than or equal to 19"),
        ("DATABASE_URL", "mysql://h/db", "must start with postgresql://"),
        ("API_DATABASE_URL", "postgresql://h:5432/", "must name a database"),
        ("API_DATABASE_FALLBACK_URL", "http://h/db", "must start with postgresql://"),
        ("REDIS_URL", "http://h", "must start with redis://"),
        ("CORS_ORIGINS", "https://ok.example,ftp://x", "must look like https://host"),
    ],
)
def test_a_bad_value_names_its_variable(
    clean_env: pytest.MonkeyPatch, name: str, raw: str, says: str
) -> None:
    clean_env.setenv(name, raw)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env()
    assert str(caught.value).startswith(name), str(caught.value)
    assert says in str(caught.value)


def test_pool_min_above_max_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("API_DB_POOL_MIN", "8")
    clean_env.setenv("API_DB_POOL_MAX", "4")
    with pytest.raises(ConfigError, match="API_DB_POOL_MIN <= API_DB_POOL_MAX"):
        Settings.from_env()


def test_checked_revalidates_a_copy(clean_env: pytest.MonkeyPatch) -> None:
    base = Settings.from_env()
    assert base.model_copy(update={"backlog": 10}).checked().backlog == 10
    with pytest.raises(ConfigError, match="^API_BACKLOG"):
        base.model_copy(update={"backlog": 0}).checked()


def test_serve_refuses_a_bad_value_at_start_up() -> None:
    env = {**os.environ, "API_REDIS_MAX_CONNECTIONS": "0"}
    proc = subprocess.run(
        [PRICECAT, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert "configuration error: API_REDIS_MAX_CONNECTIONS" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_readme_table_is_generated_from_settings() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    found = re.search(
        r"<!-- settings-table:start -->\n(.*?)<!-- settings-table:end -->", readme, re.S
    )
    assert found is not None, "README.md lost its settings-table markers"
    assert found.group(1) == markdown_table(), (
        "README.md's Configuration table is stale: paste `python -m pricecat.config` into it"
    )
    in_table = re.findall(r"^\| `([A-Z_]+)` \|", found.group(1), re.M)
    assert sorted(in_table) == sorted(env_names().values())
    defaults = {m[0]: m[1] for m in re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", readme, re.M)}
    assert defaults["API_DB_POOL_MAX"].strip() == "`16`"
    assert defaults["REFRESH_NICE"].strip() == "`10`"


def test_no_module_reads_a_declared_variable_itself() -> None:
    """The variables of Settings are read through it only (no stray os.environ.get)."""
    declared = set(env_names().values())
    stray = []
    for folder in ("api", "pricecat", "flows"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for name in re.findall(r"environ(?:\.get)?\(\s*[\"']([A-Z_]+)[\"']", text):
                if name in declared:
                    stray.append(f"{path.relative_to(REPO_ROOT)}: {name}")
    assert stray == []
