"""GET /healthz, /readyz, /metrics (not cached, not rate limited)."""

from __future__ import annotations

import asyncio
from typing import Any

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api import metrics, schemas
from api.cache import Cache
from api.db import Database, DatabaseUnavailable
from api.encoding import dumps
from api.errors import error_response
from api.queries import health
from api.routes import inject
from api.routes.docs import apply, json_of


@apply(
    openapi.summary("Liveness: the process is up"),
    openapi.tag("ops"),
    openapi.response(200, json_of(schemas.Health), "Up"),
)
async def healthz(request: Request) -> HTTPResponse:
    return HTTPResponse(
        dumps({"status": "ok"}), content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _check_redis(cache: Cache) -> tuple[bool, str | None]:
    try:
        await asyncio.wait_for(cache.redis.ping(), timeout=1.0)
        return True, None
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return False, type(exc).__name__


@apply(
    openapi.summary("Readiness: can this instance answer? Postgres, read models, Redis, data age"),
    openapi.description(
        "200 while the API can answer: Postgres reachable and the read models published. "
        "Redis unreachable is not a reason to pull the instance (answers then come straight "
        "from Postgres): status 'degraded' with checks.redis.ok false, still 200. 503 in the "
        "error shape only when Postgres is unreachable or no read models are published, with "
        "the checks in details. data_age_seconds = now - newest snapshot of the published data "
        "(last published refresh run, else the newest scrape in the marts). role: 'replica' "
        "when the API reads a hot standby, else 'primary'; replay_lag_seconds: how far that "
        "replica's replay is behind (0 when it has replayed all it received, 0 on a primary). "
        "Reading the fallback database because the preferred one (API_DATABASE_URL) is "
        "unreachable is 'degraded' too (checks.database_target)."
    ),
    openapi.tag("ops"),
    openapi.response(200, json_of(schemas.Ready), "Ready"),
    openapi.response(503, json_of(schemas.Error), "Not ready (details.checks says why)"),
)
@inject
async def readyz(request: Request, db: Database, cache: Cache) -> HTTPResponse:
    checks: dict[str, dict[str, Any]] = {}
    redis_ok, redis_detail = await _check_redis(cache)
    checks["redis"] = {"ok": redis_ok, "detail": redis_detail}
    age: dict[str, Any] = {"data_as_of": None, "published_at": None, "age_seconds": None}
    generation: int | None = None
    replication: dict[str, Any] = {"role": None, "replay_lag_seconds": None}
    try:
        missing = await health.missing_read_models(db)
        checks["postgres"] = {"ok": True, "detail": None}
        checks["read_models"] = {
            "ok": not missing,
            "detail": ("missing: " + ", ".join(missing)) if missing else None,
        }
        if not missing:
            generation, previous = await health.generation(db)
            cache.observe_generation(generation, previous)
            age = dict(await health.data_age(db))
            if age["age_seconds"] is not None:
                metrics.DATA_AGE.set(age["age_seconds"])
        replication = dict(await health.replication(db))
    except DatabaseUnavailable as exc:
        checks["postgres"] = {"ok": False, "detail": exc.code}
        checks["read_models"] = {"ok": False, "detail": "unknown (postgres unavailable)"}
    except Exception as exc:  # noqa: BLE001 - e.g. permission denied: report, don't crash
        checks["postgres"] = {"ok": True, "detail": None}
        checks["read_models"] = {"ok": False, "detail": type(exc).__name__}
    targets = db.targets
    if targets is not None and len(targets.urls) > 1:
        checks["database_target"] = {
            "ok": not targets.on_fallback,
            "detail": "reading API_DATABASE_FALLBACK_URL: API_DATABASE_URL is unreachable"
            if targets.on_fallback else None,
        }
    body = {
        "generation": generation,
        **replication,
        "checks": checks,
        "data_age_seconds": age["age_seconds"],
        "data_as_of": age["data_as_of"],
        "published_at": age["published_at"],
    }
    # Redis is an accelerator: without it every answer comes from Postgres; the fallback
    # database answers too (the primary instead of a replica)
    if checks["postgres"]["ok"] and checks["read_models"]["ok"]:
        degraded = not redis_ok or not checks.get("database_target", {"ok": True})["ok"]
        status = "degraded" if degraded else "ready"
        return HTTPResponse(
            dumps({"status": status, **body}), content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )
    failing = [
        name for name, c in checks.items() if not c["ok"] and name != "database_target"
    ]
    return error_response(503, "not_ready", "Not ready: " + ", ".join(failing), body)


async def _scrape_refresh(db: Database) -> None:
    """The refresh gauges from catalog_ops.refresh_runs (readable without a published catalog)."""
    runs = await health.refresh_runs(db)
    if runs["status"] is not None:
        for status in metrics.REFRESH_STATUSES:
            metrics.REFRESH_LAST_STATUS.labels(status).set(int(runs["status"] == status))
        metrics.REFRESH_LAST_TIMESTAMP.set(runs["finished_at_epoch"])
        if runs["duration_seconds"] is not None:
            metrics.REFRESH_LAST_SECONDS.set(runs["duration_seconds"])
    if runs["published_generation"] is not None:
        metrics.REFRESH_PUBLISHED_BUILD.set(runs["published_generation"])
    for relation, rows in runs["published_rows"].items():
        metrics.REFRESH_PUBLISHED_ROWS.labels(relation).set(rows)


async def _scrape_published(db: Database) -> None:
    """The gauges read from the published catalog (data age, build, quarantine)."""
    age = await health.data_age(db)
    if age["age_seconds"] is not None:
        metrics.DATA_AGE.set(age["age_seconds"])
    build = await health.published_build(db)
    if build is not None:
        metrics.PUBLISHED_BUILD.set(build[0])
        metrics.PUBLISHED_BUILD_AGE.set(build[1])
    metrics.QUARANTINED.set(await health.quarantined_rows(db))


@apply(
    openapi.summary("Prometheus metrics (all workers aggregated)"),
    openapi.tag("ops"),
    openapi.response(200, {"text/plain": str}, "Prometheus text format"),
)
@inject
async def metrics_endpoint(request: Request, db: Database) -> HTTPResponse:
    # each group on its own: the refresh's outcome is readable before anything is published
    for scrape in (_scrape_refresh, _scrape_published):
        try:
            await scrape(db)
        except DatabaseUnavailable:  # metrics must render even without Postgres, at once
            break
        except Exception:  # noqa: BLE001,S112 - e.g. nothing published yet
            continue
    body, content_type = metrics.render()
    return HTTPResponse(body, content_type=content_type, headers={"Cache-Control": "no-store"})


def blueprint() -> Blueprint:
    bp = Blueprint("ops")
    bp.add_route(healthz, "/healthz", methods=["GET"], name="healthz")
    bp.add_route(readyz, "/readyz", methods=["GET"], name="readyz")
    bp.add_route(metrics_endpoint, "/metrics", methods=["GET"], name="metrics")
    return bp
