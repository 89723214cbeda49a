"""A bare Sanic app for the API benchmark's ceiling: every GET returns one constant JSON body.

    .venv/bin/python -m bench.baseline_app --port 8100 --workers 2 --body-bytes 5000

Same framework, same worker count and the same Sanic defaults as ``pricecat serve`` (no access
log), but no routing work, no validation, no Redis and no Postgres: what is left is the cost of
HTTP parsing and writing a response of the same size. bench/bench_api.py starts it after the API
runs with the API's measured mean body size and reports the API's throughput as a ratio of it.
"""

from __future__ import annotations

import argparse
import os
from functools import partial

from sanic import HTTPResponse, Request, Sanic

BODY_ENV = "BASELINE_BODY_BYTES"


def constant_body(size: int) -> bytes:
    """Valid JSON of exactly ``size`` bytes (at least 12)."""
    size = max(size, 12)
    head, tail = b'{"pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def create_app(body_bytes: int | None = None) -> Sanic:
    size = body_bytes if body_bytes is not None else int(os.environ.get(BODY_ENV, "5000"))
    body = constant_body(size)
    app = Sanic("pricecat_baseline")
    app.config.update({"ACCESS_LOG": False, "MOTD": False, "KEEP_ALIVE_TIMEOUT": 15})

    async def constant(request: Request, path: str = "") -> HTTPResponse:
        return HTTPResponse(body, status=200, content_type="application/json")

    app.add_route(constant, "/", methods=["GET"], name="root")
    app.add_route(constant, "/<path:path>", methods=["GET"], name="any")
    return app


def main(argv: list[str] | None = None) -> int:
    from sanic.worker.loader import AppLoader

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--body-bytes", type=int, default=5000)
    args = ap.parse_args(argv)
    os.environ[BODY_ENV] = str(args.body_bytes)  # spawned workers rebuild the app from the env
    loader = AppLoader(factory=partial(create_app, args.body_bytes))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, workers=args.workers, access_log=False,
                motd=False)
    Sanic.serve(primary=app, app_loader=loader)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
