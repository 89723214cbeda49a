"""The Sanic app factory and ``pricecat serve``.

``create_app()`` builds a fresh app (no module-global app, nothing connects at import time);
``sanic api.server:create_app --factory`` works. Per worker, a ``before_server_start`` listener
creates the asyncpg pool and the redis-py asyncio ``BlockingConnectionPool``; sanic-ext injects
them into handlers (``Database``, ``Cache``); ``after_server_stop`` closes them.

Every setting, the API's tuning knobs included (API_DB_POOL_MAX, API_REDIS_TIMEOUT, ...), is a
field of ``pricecat.config.Settings``: its env variable, default, bounds and help are declared
there (README.md, "Configuration", is generated from it).
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pricecat.config import ConfigError, Settings

if TYPE_CHECKING:
    from sanic import Sanic

log = logging.getLogger("api.server")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: allocations between two collections of the youngest generation in a worker (CPython: 700)
GC_YOUNG_THRESHOLD = 20_000
_CREATED_MULTIPROC_FLAG = "PRICECAT_CREATED_MULTIPROC_DIR"


def validate(settings: Settings) -> Settings:
    """Fail fast with a clear message on unusable configuration (Settings validates what it
    reads from the env; this re-checks a variant made with ``model_copy(update=...)``)."""
    return settings.checked()


def create_app(settings: Settings | None = None) -> Sanic[Any, Any]:
    from sanic import HTTPResponse, Request
    from sanic_ext import Extend
    from sanic_ext.extensions.http.extension import HTTPExtension
    from sanic_ext.extensions.openapi.extension import OpenAPIExtension

    from api import metrics
    from api.cache import Cache, CacheOptions
    from api.db import Database, DatabaseTargets, GenerationReader, PoolOptions
    from api.errors import JsonErrorHandler
    from api.http import ApiRequest, ApiSanic, Cors, RateLimiter, ResponseMemo, gzip_response
    from api.routes import catalog, deals, feeds, images, meta, ops, products, search, web

    if not isinstance(settings, Settings):
        # `sanic api.server:create_app --factory` passes its CLI arguments: read the env
        settings = Settings.from_env()
    settings = validate(settings)
    options = settings  # the API's knobs are fields of the one Settings object
    from api import logs

    logs.configure(options.log_format)  # runs in every worker process

    app = ApiSanic("pricecat", error_handler=JsonErrorHandler(), request_class=ApiRequest)
    app.config.update(
        {
            "FALLBACK_ERROR_FORMAT": "json",
            "ACCESS_LOG": options.access_log,
            "REQUEST_MAX_HEADER_SIZE": 8192,  # request line + headers
            "REQUEST_MAX_SIZE": 64 * 1024,  # GET-only API: no large bodies
            "REQUEST_TIMEOUT": 15,
            "RESPONSE_TIMEOUT": 30,
            "KEEP_ALIVE_TIMEOUT": 15,
            "MOTD": False,
            "NOISY_EXCEPTIONS": False,
            # sanic-ext
            "CORS": False,  # api.http.Cors: only CORS_ORIGINS, nothing by default
            "HTTP_AUTO_HEAD": True,
            "HTTP_AUTO_OPTIONS": True,
            "HTTP_AUTO_TRACE": False,
            "OAS_UI_DEFAULT": "redoc",
            "OAS_IGNORE_HEAD": True,
            "OAS_IGNORE_OPTIONS": True,
            "HEALTH": False,
        }
    )
    # /docs: a self-contained page rendering /docs/openapi.json (works offline; Redoc and
    # Swagger UI would load their JavaScript from a CDN). Swagger UI stays at /docs/swagger.
    docs_html = Path(__file__).resolve().parent / "static" / "docs.html"
    app.config.OAS_PATH_TO_REDOC_HTML = str(docs_html)
    app.config.OAS_UI_REDOC_HTML_TITLE = "pricecat API"
    # OpenAPI + auto HEAD/OPTIONS only: the pools are passed by api.routes.inject, not by
    # sanic-ext's injection (a signal dispatched on every request)
    Extend(app, built_in_extensions=False, extensions=[OpenAPIExtension, HTTPExtension])
    app.ext.openapi.describe(
        "pricecat API",
        version="1.0.0",
        description=(
            "Board-game price comparison, read side. JSON under /api/v1, served from the dbt "
            "read models through Redis. Errors: {\"error\": {\"code\", \"message\", "
            "\"details\"}} for every 4xx/5xx."
        ),
    )
    app.ctx.settings = settings

    for bp in (
        catalog.blueprint(),
        products.blueprint(),
        deals.blueprint(),
        feeds.blueprint(),
        images.blueprint(),
        search.blueprint(),
        meta.blueprint(),
        ops.blueprint(),
        web.blueprint(options.web_dist),
    ):
        app.blueprint(bp)

    cors = Cors(frozenset(settings.cors_origins))
    limiter = (
        RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute > 0 else None
    )

    @app.before_server_start
    async def open_pools(app: Sanic[Any, Any]) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis

        # pool and generation reader read the same server (replica, else the fallback)
        targets = DatabaseTargets(settings.api_database_url, settings.api_database_fallback_url)
        app.ctx.db = await Database.connect(
            targets,
            settings.statement_timeout_ms,
            PoolOptions(
                min_size=options.db_pool_min,
                max_size=options.db_pool_max,
                acquire_timeout=options.db_acquire_timeout,
            ),
        )
        pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=options.redis_max_connections,
            timeout=options.redis_pool_timeout,
            # short: a Redis that accepts connections and never answers (a hung host, a dead
            # route) costs a request at most this; the breaker then skips Redis for a second
            socket_connect_timeout=options.redis_timeout,
            socket_timeout=options.redis_timeout,
        )
        app.ctx.redis = Redis(connection_pool=pool)
        app.ctx.generation_reader = GenerationReader(targets)
        # a load may queue for the pool, then run up to 3 statements: the lock covers that
        lock_ms = int(options.db_acquire_timeout * 1000 + 2 * settings.statement_timeout_ms + 1000)
        app.ctx.cache = Cache(
            app.ctx.redis,
            settings.cache_namespace,
            CacheOptions(
                generation_check_seconds=options.generation_check_seconds,
                local_max_entries=options.local_cache_entries,
                local_max_bytes=int(options.local_cache_mb * 1024 * 1024),
                stale_seconds=options.cache_stale_seconds,
                lock_ms=lock_ms,
                refresh_concurrency=max(1, options.db_pool_max // 4),
            ),
            generation_source=app.ctx.generation_reader.read,
        )

    @app.after_server_start
    async def worker_up(app: Sanic[Any, Any]) -> None:
        # only now is this worker serving (other before_server_start listeners, e.g.
        # sanic-ext's, run after ours): tests and probes count workers by this gauge
        metrics.WORKERS.inc()
        # everything built at start-up (modules, routes, pools) lives as long as the worker:
        # moved out of the collector's generations, so a full collection under load scans
        # only what requests and the cache allocated since; the young generation is collected
        # less often (1,000 connections keep many requests alive at once: each collection
        # would promote them, and the oldest generation would fill with their garbage)
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    @app.after_server_stop
    async def close_pools(app: Sanic[Any, Any]) -> None:
        # Sanic may run this listener twice on uvloop (the first attempt can be interrupted by
        # the stopped loop): one shared task does the work, every call waits for it, so no
        # close coroutine is left behind for the closed loop ("Event loop is closed").
        import asyncio

        task = getattr(app.ctx, "closing", None)
        if task is None:
            task = asyncio.ensure_future(_close_pools(app))
            app.ctx.closing = task
        await asyncio.shield(task)

    @app.main_process_start
    async def metrics_dir(app: Sanic[Any, Any]) -> None:
        # `sanic api.server:create_app --factory --workers N` too: spawned workers inherit this
        if not os.environ.get(MULTIPROC_ENV):
            os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="pricecat-metrics-")
            os.environ[_CREATED_MULTIPROC_FLAG] = os.environ[MULTIPROC_ENV]

    @app.main_process_stop
    async def metrics_dir_cleanup(app: Sanic[Any, Any]) -> None:
        created = os.environ.pop(_CREATED_MULTIPROC_FLAG, None)
        if created and os.environ.get(MULTIPROC_ENV) == created:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(created, ignore_errors=True)

    from time import perf_counter

    responses = ResponseMemo()
    # label -> metric children, per route (routes are few): no label validation per request
    route_metrics: dict[tuple[str | None, str, int], tuple[Any, Any]] = {}

    def fast(request: Request) -> HTTPResponse | None:
        """A GET whose answer is in the in-process cache, answered before routing (api/http.py
        fast path, ApiSanic): the work of the request and response middleware (rate limit,
        metrics, CORS) done here; None: the full path answers."""
        started = perf_counter()
        found = responses.lookup(request, app.ctx.cache)
        if found is None:
            return None
        entry, generation, counter, route, limited = found
        request.route = route  # the request metrics' label; error handling
        request.ctx.started = started
        if limited and limiter is not None:
            limiter.check(request.remote_addr or request.ip or "unknown")
        metrics.count(counter)
        response = responses.respond(request, entry, generation)
        account(request, response)
        return response

    app.fast_path = fast

    async def before(request: Request) -> HTTPResponse | None:
        request.ctx.started = perf_counter()
        preflight = cors.preflight(request)
        if preflight is not None:
            return preflight
        if limiter is not None and request.path.startswith("/api/"):
            limiter.check(request.remote_addr or request.ip or "unknown")
        return None

    def account(request: Request, response: Any) -> None:
        """Request metrics (batched) and CORS headers of every response."""
        route = request.route
        ctx = request.ctx
        status = response.status
        metric_key = (route.path if route is not None else None, request.method, status)
        children = route_metrics.get(metric_key)
        if children is None:
            label = "/" + route.path if route is not None else "unmatched"
            children = (
                metrics.child(metrics.LATENCY, label),
                metrics.child(metrics.REQUESTS, label, request.method, str(status)),
            )
            if len(route_metrics) < 4096:
                route_metrics[metric_key] = children
        started = getattr(ctx, "started", None)
        if started is not None:
            metrics.observe(children[0], perf_counter() - started)
        metrics.count(children[1])
        cors.decorate(request, response)

    async def after(request: Request, response: Any) -> None:
        ctx = request.ctx
        account(request, response)
        if getattr(ctx, "cached", False):  # api.http.respond did gzip/ETag already
            outcome = getattr(ctx, "outcome", None)
            if outcome is not None:
                responses.remember(request, outcome)
            return
        if response.status == 200 and request.path.startswith("/assets/"):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        gzip_response(request, response)

    app.register_middleware(before, "request")
    app.register_middleware(after, "response")
    return app


async def _close_pools(app: Sanic[Any, Any]) -> None:
    from api import metrics

    metrics.flush()
    metrics.WORKERS.dec()
    cache = getattr(app.ctx, "cache", None)
    if cache is not None:
        await cache.close()  # pending loads/refreshes release their connections
    redis = getattr(app.ctx, "redis", None)
    if redis is not None:
        try:
            await redis.aclose()
            await redis.connection_pool.disconnect()
        except Exception as exc:  # noqa: BLE001 - shutting down anyway
            log.info("closing redis: %s", exc)
    reader = getattr(app.ctx, "generation_reader", None)
    if reader is not None:
        await reader.close()
    db = getattr(app.ctx, "db", None)
    if db is not None:
        await db.close()
    metrics.mark_process_dead(os.getpid())


def _prepare_metrics_dir() -> None:
    """Fresh multiprocess directory before any worker imports prometheus_client."""
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        os.makedirs(existing, exist_ok=True)
        for name in os.listdir(existing):
            if name.endswith(".db"):
                os.remove(os.path.join(existing, name))
        return
    path = tempfile.mkdtemp(prefix="pricecat-metrics-")
    os.environ[MULTIPROC_ENV] = path
    os.environ[_CREATED_MULTIPROC_FLAG] = path


def _probe_database(settings: Settings) -> bool:
    """Fail fast (before any worker starts) on a wrong database, role or password; an unreachable
    server only warns: the API then serves what Redis holds and answers 503 otherwise."""
    import asyncio
    import sys

    import asyncpg

    from api.db import FATAL_AT_START

    async def probe() -> None:
        conn = await asyncpg.connect(settings.api_database_url, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except FATAL_AT_START as exc:
        print(f"pricecat serve: cannot use API_DATABASE_URL: {exc}", file=sys.stderr)
        return False
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        log.warning("Postgres not reachable at start-up (%s); starting anyway", exc)
    return True


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    dev: bool = False,
) -> int:
    """Run the API (and the web UI) with ``workers`` worker processes; blocks until stopped."""
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    settings = validate(settings)
    options = settings
    from api import logs

    logs.configure(options.log_format)
    if workers < 1:
        raise ConfigError("--workers must be >= 1")
    if not _probe_database(settings):
        return 2
    _prepare_metrics_dir()
    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    app.prepare(
        host=host,
        port=port,
        workers=workers,
        dev=dev,
        access_log=options.access_log,
        backlog=options.backlog,
        motd=False,
    )
    _shield_sync_manager_from_sigterm(app)
    Sanic.serve(primary=app, app_loader=loader)
    return 0


def _shield_sync_manager_from_sigterm(app: Sanic[Any, Any]) -> None:
    """A SIGTERM sent to the whole process group (``kill -TERM -<pgid>``, a container stop, a
    test harness) also reached the ``multiprocessing`` manager process Sanic starts for its
    worker states; it died at once, and Sanic's main process, still polling those states while
    it stopped the workers, ended with a ``BrokenPipeError`` traceback. That process ignores
    SIGINT already; here it also inherits SIGTERM ignored (Sanic shuts it down itself when
    everything else has stopped). The main process restores its own handler at
    ``main_process_start``, right after the manager started and before Sanic installs its
    shutdown handler and starts the workers."""
    import signal

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def restore(_app: Sanic[Any, Any]) -> None:
        signal.signal(signal.SIGTERM, previous)

    app.register_listener(restore, "main_process_start")
    app.register_listener(_stop_once_on_signal, "after_server_start")
    app.register_listener(_ignore_stop_signals, "before_server_stop")


async def _stop_once_on_signal(app: Sanic[Any, Any]) -> None:
    """In each worker: the first SIGINT/SIGTERM stops it, later ones are ignored. A SIGTERM to
    the process group reaches a worker twice (directly, then as the SIGINT the main process
    sends each worker); Sanic's handler stopped the loop again while the worker was draining an
    in-flight request, and the drain failed with "Event loop stopped before Future completed"."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    stopping = False

    def stop_once() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            app.stop(terminate=False)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_once)


def _ignore_stop_signals(_app: Sanic[Any, Any]) -> None:
    """In each worker, once it is stopping: further SIGINT/SIGTERM are ignored. Sanic removes the
    loop's signal handlers (ours above) as soon as the loop stops, which restores Python's
    defaults: the SIGINT the main process sends each worker on shutdown, arriving while the worker
    drains its connections, raised KeyboardInterrupt inside that drain (a traceback, the drain cut
    short). Sanic's main process still ends a worker that outlives the graceful timeout."""
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
