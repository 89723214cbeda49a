"""SQL lives in ``.sql`` files beside the module that binds it: one typed function per file.

The functions return plain JSON-ready dicts (``JsonObject``) shaped as the pydantic model their
docstring names in ``api/schemas.py``, the one declaration of each response shape (OpenAPI, and
from it web/src/api.gen.ts). No pydantic work per request: tests/api/test_shapes.py validates
every endpoint's answers against those models, extra or missing keys included.

``load_sql("catalog_page")`` reads ``api/queries/catalog_page.sql`` once at import time. Files
are lowercase SQL with ``$1``-style parameters only; nothing is interpolated into them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: a JSON object as the queries build it (its shape: a model in api/schemas.py)
JsonObject = dict[str, Any]

SQL_DIR = Path(__file__).resolve().parent


def load_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def all_sql_files() -> list[str]:
    """Names of every .sql file the API runs (the EXPLAIN test walks this list)."""
    return sorted(p.stem for p in SQL_DIR.glob("*.sql"))
