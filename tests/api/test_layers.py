"""Layering of api/: the query side (api/queries) never imports the HTTP parser (api/params)."""

from __future__ import annotations

import ast
from pathlib import Path

QUERIES = Path(__file__).resolve().parents[2] / "api" / "queries"


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_queries_do_not_import_the_http_parser() -> None:
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if m.startswith("api.params")
                          or m == "api.params" or m.startswith(("sanic", "api.routes")))
        for path in sorted(QUERIES.glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
    assert len(offenders) >= 8  # every query module was read
