"""Static checks on web/ (no browser): the frontend talks only to its own origin, through api.ts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import REPO_ROOT

WEB = REPO_ROOT / "web"
# The SVG namespace inside the inline favicon is an identifier, never fetched.
ALLOWED_URLS = {"http://www.w3.org/2000/svg"}


def source_files() -> list[Path]:
    files = [WEB / "index.html", *sorted((WEB / "src").rglob("*"))]
    files += sorted((WEB / "public").rglob("*")) if (WEB / "public").exists() else []
    return [f for f in files if f.is_file()]


def test_no_other_host_or_backend_is_referenced() -> None:
    for path in source_files():
        body = path.read_text(encoding="utf-8", errors="replace")
        lowered = body.lower()
        for word in ("supabase", "postgrest", "/rest/v1"):
            assert word not in lowered, f"{path}: {word}"
        urls = set(re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"'`)]*", body, re.I))
        assert urls <= ALLOWED_URLS, f"{path}: {urls - ALLOWED_URLS}"


def test_only_api_module_talks_to_the_backend() -> None:
    for path in (WEB / "src").rglob("*.ts"):
        body = path.read_text(encoding="utf-8")
        uses_network = re.search(r"\bfetch\(|XMLHttpRequest|WebSocket|EventSource|sendBeacon", body)
        if path.name == "api.ts":
            assert uses_network
            assert '"/api/v1"' in body
        else:
            assert not uses_network, path
            assert "/api/" not in body, path


def test_build_setup_is_commit_ready() -> None:
    package = json.loads((WEB / "package.json").read_text(encoding="utf-8"))
    assert package["scripts"]["build"].endswith("vite build")
    assert (WEB / "package-lock.json").exists()
    ignored = (REPO_ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "web/node_modules/" in ignored and "web/dist/" in ignored
    pinned = {**package.get("dependencies", {}), **package.get("devDependencies", {})}
    for dependency in pinned.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", dependency), "exact versions (lock file is the truth)"
