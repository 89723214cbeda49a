"""SQL lives in ``.sql`` files beside the module that binds it: one typed function per file.

``load_sql("catalog_page")`` reads ``api/queries/catalog_page.sql`` once at import time. Files
are lowercase SQL with ``$1``-style parameters only; nothing is interpolated into them.
"""

from __future__ import annotations

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent


def load_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def all_sql_files() -> list[str]:
    """Names of every .sql file the API runs (the EXPLAIN test walks this list)."""
    return sorted(p.stem for p in SQL_DIR.glob("*.sql"))
