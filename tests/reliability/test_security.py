"""Security: the API's role can't write, request size limits, rate limiting, CORS allowlist,
no leaks in error bodies, secrets only from the environment."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pricecat.config import Settings
from tests.reliability.conftest import ALLOWED_ORIGIN, api_env, assert_error_json, assert_no_leak
from tests.reliability.procs import REPO_ROOT, ApiServer, RedisServer, raw_request, running_api

# --------------------------------------------------------------------------- read-only role

MARTS = ("catalog.catalog_slug_summary", "catalog.catalog_slug_seller_summary")

WRITES: list[tuple[str, str]] = [
    ("insert-raw", "insert into public.product_price_snapshots (scraped_at, seller, "
                   "product_name_original, product_name_normalized) values (now(), 'x', 'x', 'x')"),
    ("update-raw", "update public.product_price_snapshots set price = 0"),
    ("delete-raw", "delete from public.product_price_snapshots"),
    ("truncate-raw", "truncate public.product_price_snapshots"),
    ("drop-raw", "drop table public.product_price_snapshots"),
    ("alter-raw", "alter table public.product_price_snapshots add column evil int"),
    ("create-index-raw", "create index evil_idx on public.product_price_snapshots (seller)"),
    ("create-table-public", "create table public.evil (id int)"),
    ("create-table-catalog", "create table catalog.evil (id int)"),
    ("create-schema", "create schema evil"),
    ("drop-schema-catalog", "drop schema catalog cascade"),
    ("alter-schema-catalog", "alter schema catalog rename to evil"),
    ("refresh-runs-insert", "insert into catalog_ops.refresh_runs (status) values ('published')"),
    ("refresh-runs-delete", "delete from catalog_ops.refresh_runs"),
    ("copy-from-program", "copy catalog.catalog_slug_summary (slug) from program 'id'"),
    ("create-function", "create function public.evil() returns int language sql as 'select 1'"),
    ("set-role-postgres", "set role postgres"),
    ("read-pg-authid", "select rolpassword from pg_authid"),
]
MART_WRITES = [
    ("insert", "insert into MART (slug) values ('evil')"),
    ("update", "update MART set slug = 'evil'"),
    ("delete", "delete from MART"),
    ("truncate", "truncate MART"),
    ("drop", "drop table MART"),
    ("alter", "alter table MART rename to evil"),
    ("lock", "lock table MART in access exclusive mode"),
]
WRITES += [(f"{verb}-{mart}", sql.replace("MART", mart)) for mart in MARTS
           for verb, sql in MART_WRITES]


def _as_api_role(settings: Settings, sql: str) -> BaseException | None:
    async def go() -> BaseException | None:
        conn = await asyncpg.connect(settings.api_database_url)
        try:
            async with conn.transaction():
                await conn.execute(sql)
        except asyncpg.PostgresError as exc:
            return exc
        finally:
            await conn.close()
        return None

    return asyncio.run(go())


@pytest.mark.parametrize("name,sql", WRITES, ids=[w[0] for w in WRITES])
def test_api_role_cannot_write(rel_settings: Settings, name: str, sql: str) -> None:
    err = _as_api_role(rel_settings, sql)
    assert err is not None, f"pricecat_api could run: {sql}"
    # 42501 insufficient_privilege; 42809 etc. would mean we hit something else first
    assert isinstance(err, asyncpg.InsufficientPrivilegeError | asyncpg.ReadOnlySQLTransactionError
                      ) or err.sqlstate == "42501", (type(err).__name__, err.sqlstate, str(err))


def test_api_role_cannot_grant_itself_anything(rel_settings: Settings) -> None:
    """GRANT by a non-owner only warns ("no privileges were granted"): prove nothing changed."""
    async def go() -> list[bool]:
        conn = await asyncpg.connect(rel_settings.api_database_url)
        try:
            for table in ("public.product_price_snapshots", *MARTS):
                await conn.execute(f"grant all on {table} to pricecat_api")
            return [
                await conn.fetchval("select has_table_privilege($1, $2)", table, priv)
                for table in ("public.product_price_snapshots", *MARTS)
                for priv in ("insert", "update", "delete", "truncate", "references", "trigger")
            ] + [
                await conn.fetchval("select has_schema_privilege($1, 'create')", schema)
                for schema in ("public", "catalog", "catalog_ops")
            ]
        finally:
            await conn.close()

    assert asyncio.run(go()) == [False] * (3 * 6 + 3)


def test_api_role_attributes(rel_settings: Settings) -> None:
    async def go() -> tuple[Any, ...]:
        conn = await asyncpg.connect(rel_settings.api_database_url)
        try:
            role = await conn.fetchrow(
                "select rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls "
                "from pg_roles where rolname = current_user"
            )
            user = await conn.fetchval("select current_user")
            owns = await conn.fetchval(
                "select count(*) from pg_class where relowner = "
                "(select oid from pg_roles where rolname = current_user)"
            )
            can_read = await conn.fetchval("select count(*) from catalog.catalog_slug_summary")
            return user, tuple(role.values()), owns, can_read
        finally:
            await conn.close()

    user, attrs, owns, can_read = asyncio.run(go())
    assert user == "pricecat_api"
    assert attrs == (False, False, False, False, False)
    assert owns == 0
    assert can_read > 0


def test_api_server_connects_as_read_only_role(rel_settings: Settings, api: ApiServer) -> None:
    """The running API's connections belong to pricecat_api (the env says so, and Postgres)."""
    from tests import helpers

    assert api.get("/api/v1/meta/categories").status == 200
    rows = helpers.fetch(
        rel_settings,
        "select distinct usename from pg_stat_activity "
        "where datname = current_database() and application_name like 'pricecat-api%'",
    )
    assert [r["usename"] for r in rows] == ["pricecat_api"]


# ---------------------------------------------------------------------------- size limits


def test_oversized_request_line(api: ApiServer) -> None:
    line = b"GET /api/v1/catalog?q=" + b"a" * 200_000 + b" HTTP/1.1\r\n"
    r = raw_request(api.port, line + b"Host: x\r\nConnection: close\r\n\r\n")
    assert r.status in (413, 414, 431), (r.status, r.text[:300])
    assert_no_leak(r)
    assert api.get("/healthz").status == 200


def test_1mb_query_string(api: ApiServer) -> None:
    line = b"GET /api/v1/search/suggest?q=" + b"%41" * 350_000 + b" HTTP/1.1\r\n"
    r = raw_request(api.port, line + b"Host: x\r\nConnection: close\r\n\r\n")
    assert r.status in (413, 414, 431), (r.status, r.text[:300])
    assert api.get("/healthz").status == 200


def test_oversized_header(api: ApiServer) -> None:
    r = raw_request(api.port, b"GET /api/v1/meta/categories HTTP/1.1\r\nHost: x\r\n"
                    b"X-Big: " + b"b" * 100_000 + b"\r\nConnection: close\r\n\r\n")
    assert r.status in (413, 431), (r.status, r.text[:300])
    assert_no_leak(r)


def test_too_many_headers(api: ApiServer) -> None:
    headers = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(5000))
    r = raw_request(api.port, b"GET /api/v1/meta/categories HTTP/1.1\r\nHost: x\r\n"
                    + headers + b"Connection: close\r\n\r\n")
    assert r.status in (400, 413, 431), (r.status, r.text[:300])


def test_request_body_on_get_endpoint(api: ApiServer) -> None:
    body = b"x" * 2_000_000
    r = raw_request(api.port, b"POST /api/v1/catalog HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    # the route is GET-only: the method is refused with the JSON error shape, body unread
    body_json = assert_error_json(r, 405)
    assert body_json["error"]["code"] == "method_not_allowed", body_json


def test_malformed_http(api: ApiServer) -> None:
    for data in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # TLS hello
                 b"GARBAGE\r\n\r\n",
                 b"GET /api/v1/catalog HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                 b"GET /api/v1/catalog HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        try:
            r = raw_request(api.port, data, timeout=3)
        except ConnectionError:
            continue  # closing the connection on garbage is fine
        assert r.status < 500, (data[:40], r.status, r.text[:200])
        assert_no_leak(r)
    assert api.get("/healthz").status == 200


# -------------------------------------------------------------------------- rate limiting


def test_rate_limit_answers_429_json_with_retry_after(
    rel_settings: Settings, own_redis: RedisServer, sample: dict[str, Any]
) -> None:
    env = api_env(rel_settings, own_redis.url, RATE_LIMIT_PER_MINUTE=5)
    with running_api(env, name="ratelimit") as api:
        statuses = []
        limited = None
        for _ in range(12):
            r = api.get(f"/api/v1/products/{sample['slug']}")
            statuses.append(r.status)
            if r.status == 429:
                limited = r
        assert statuses[:5] == [200] * 5, statuses
        assert limited is not None, statuses
        body = assert_error_json(limited, 429)
        assert body["error"]["code"] == "rate_limited"
        retry_after = limited.header("retry-after")
        assert retry_after is not None and retry_after.isdigit(), limited.headers
        assert 1 <= int(retry_after) <= 60
        assert set(statuses[5:]) == {429}, statuses
        # another client (by X-Forwarded-For only if the API trusts it — it must not by default)
        spoofed = api.get(f"/api/v1/products/{sample['slug']}",
                          headers={"X-Forwarded-For": "203.0.113.9"})
        assert spoofed.status == 429, "X-Forwarded-For from an untrusted peer bypassed the limit"


def test_rate_limit_off_by_default(api: ApiServer, sample: dict[str, Any]) -> None:
    statuses = {api.get("/api/v1/meta/categories").status for _ in range(120)}
    assert statuses == {200}


# ----------------------------------------------------------------------------------- CORS


def test_cors_allowed_origin_echoed(api: ApiServer) -> None:
    r = api.get("/api/v1/meta/categories", headers={"Origin": ALLOWED_ORIGIN})
    assert r.status == 200
    assert r.header("access-control-allow-origin") == ALLOWED_ORIGIN
    assert "origin" in (r.header("vary") or "").lower()


def test_cors_other_origin_not_allowed(api: ApiServer) -> None:
    for origin in ("https://evil.example", "https://allowed.example.evil.example",
                   "http://allowed.example", "null"):
        r = api.get("/api/v1/meta/categories", headers={"Origin": origin})
        assert r.status in (200, 403)
        acao = r.header("access-control-allow-origin")
        assert acao in (None, ""), (origin, acao)
        assert r.header("access-control-allow-credentials") in (None, "false")


def test_cors_preflight(api: ApiServer) -> None:
    ok = api.get("/api/v1/catalog", method="OPTIONS", headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET"})
    assert ok.status in (200, 204), (ok.status, ok.text[:200])
    assert ok.header("access-control-allow-origin") == ALLOWED_ORIGIN
    assert "GET" in (ok.header("access-control-allow-methods") or "")
    bad = api.get("/api/v1/catalog", method="OPTIONS", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert bad.status < 500
    assert bad.header("access-control-allow-origin") in (None, "")


# ------------------------------------------------------------------------------ leaks


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/api/v1/products/%ff", 400, "invalid_parameter"),
    ("/api/v1/catalog?page=x", 400, "invalid_parameter"),
    ("/api/v1/catalog?sort=evil", 400, "invalid_parameter"),
    ("/api/v1/nope", 404, "not_found"),
    ("/api/v1/products/" + "a" * 300, 400, "invalid_parameter"),
    ("/docs/../../etc/passwd", 404, "not_found"),
    ("/api/v1/search/suggest", 400, "invalid_parameter"),
    ("/api/v1/snapshots/recent?limit=x", 400, "invalid_parameter"),
])
def test_errors_have_no_stack_trace_or_sql(
    api: ApiServer, path: str, status: int, code: str
) -> None:
    r = api.get(path)
    body = assert_error_json(r, status)
    assert body["error"]["code"] == code, (path, body)
    assert r.header("server") in (None, "") or "python" not in r.header("server").lower()


# ------------------------------------------------------------------------------ secrets


SECRET_PATTERNS = [
    # a URL with an inline password: scheme://user:password@host
    re.compile(r"\b(?:postgres(?:ql)?|redis|rediss|amqp|https?)://[^\s:/@'\"]+:[^\s@/'\"$]+@"),
    # password = "literal" (not env var references, not empty)
    re.compile(r"(?i)\b(?:password|passwd|secret|api_key|token)\b\s*[:=]\s*['\"][^'\"${}\s]{4,}['\"]"),
    re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
]
SECRET_ALLOW = ("tests/reliability/test_security.py",)


def test_no_hard_coded_secrets() -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    hits = []
    for name in files:
        if name in SECRET_ALLOW or not name.endswith(
            (".py", ".sh", ".yml", ".yaml", ".toml", ".md", ".ts", ".js", ".json", ".sql",
             ".cfg", ".ini", ".env", ".txt")
        ):
            continue
        path = Path(REPO_ROOT, name)
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for pat in SECRET_PATTERNS:
            for m in pat.finditer(text):
                hits.append(f"{name}: {m.group(0)[:80]}")
    assert hits == [], hits


def test_profile_reads_credentials_from_env() -> None:
    text = (REPO_ROOT / "profiles" / "profiles.yml").read_text()
    assert "env_var('PRICECAT_PGPASSWORD'" in text or 'env_var("PRICECAT_PGPASSWORD"' in text
