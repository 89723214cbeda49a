"""Print the API's OpenAPI document (the JSON served at /docs/openapi.json) without serving it:
``python -m api.openapi_dump [PATH]``. The web UI's types are generated from it (web/package.json
``gen:api``: openapi-typescript writes web/src/api.gen.ts; scripts/test.sh checks it is current).

Builds the app with create_app() (nothing connects: the pools open in before_server_start,
which is not run) and runs only sanic-ext's spec builder on the finalized routes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def openapi_document() -> dict[str, Any]:
    from sanic_ext.extensions.openapi.builders import SpecificationBuilder

    from api.server import create_app
    from pricecat.config import Settings

    app = create_app(Settings())
    app.router.finalize()
    build_spec: Any
    (build_spec,) = [
        future.listener
        for future in app.blueprints["openapi"]._future_listeners
        if getattr(future.listener, "__name__", "") == "build_spec"
    ]
    build_spec(app)
    builder: Any = SpecificationBuilder().build(app)  # untyped
    # as served: through JSON (status codes become string keys)
    spec: dict[str, Any] = json.loads(json.dumps(builder.serialize()))
    return spec


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
