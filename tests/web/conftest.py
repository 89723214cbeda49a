"""Browser-test fixtures: the built web UI (web/dist), `pricecat serve` on the fixture database
as a subprocess, and Debian's Chromium driven by Playwright with a network and console log.

Every request a page makes must go to the page's own origin: product images too, which the
pages load through the API's image proxy (`/api/v1/images/{slug}`; the sellers' URLs in
`hero_image_url` are data only). The page fixture aborts any request to another host and
`BrowserLog.assert_clean` fails the test on it — there is no exception for any host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from bench.procs import ServiceError, pricecat_serve
from pricecat.config import Settings
from tests.conftest import REPO_ROOT

WEB_DIR = REPO_ROOT / "web"
DIST_INDEX = WEB_DIR / "dist" / "index.html"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _newest_source_mtime() -> float:
    paths = [WEB_DIR / "index.html", WEB_DIR / "package-lock.json", WEB_DIR / "vite.config.ts"]
    paths += [p for p in (WEB_DIR / "src").rglob("*") if p.is_file()]
    paths += [p for p in (WEB_DIR / "public").rglob("*") if p.is_file()]
    return max(p.stat().st_mtime for p in paths if p.exists())


@pytest.fixture(scope="session")
def web_dist() -> Path:
    """web/dist, built with npm when missing or older than the sources."""
    if DIST_INDEX.exists() and DIST_INDEX.stat().st_mtime >= _newest_source_mtime():
        return DIST_INDEX.parent
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to build web/dist (Node 20 + npm)")
    if not (WEB_DIR / "node_modules").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=WEB_DIR, check=True
        )
    subprocess.run([npm, "run", "--silent", "build"], cwd=WEB_DIR, check=True)
    assert DIST_INDEX.exists()
    return DIST_INDEX.parent


@pytest.fixture(scope="session")
def web_settings(fixture_settings: Settings) -> Settings:
    """The session fixture database (override: PRICECAT_TEST_DB, see tests/conftest.py)."""
    return fixture_settings


@pytest.fixture(scope="session")
def server_url(web_settings: Settings, web_dist: Path, output_dir: Path) -> Iterator[str]:
    """`pricecat serve` on a free port against the fixture database; stopped at the end."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=web_settings.database_url,
        API_DATABASE_URL=web_settings.api_database_url,
        REDIS_URL=web_settings.redis_url,
        CACHE_NAMESPACE=web_settings.cache_namespace,
    )
    service, base = pricecat_serve(output_dir / "web-server.log", env, workers=1)
    with service.start():
        try:
            service.wait_http(f"{base}/readyz", timeout=60)
        except ServiceError as exc:
            pytest.fail(str(exc))
        yield base


@pytest.fixture(scope="session")
def browser(server_url: str) -> Iterator[Browser]:
    """Chromium. Depends on server_url so that the fixture database (built with asyncio.run)
    exists before Playwright's sync API starts its event loop in this thread."""

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install chromium (never `playwright install`)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class BrowserLog:
    origin: str
    requests: list[tuple[str, str]] = field(default_factory=list)  # (resource type, url)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    #: console messages a test expects (e.g. the browser's own note about a 404 response)
    expected_console: list[str] = field(default_factory=list)

    def same_origin(self, url: str) -> bool:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" == self.origin

    def foreign_requests(self) -> list[tuple[str, str]]:
        """Requests to any other origin (product images included: they come via the proxy)."""
        return [
            (kind, url)
            for kind, url in self.requests
            if not url.startswith("data:") and not self.same_origin(url)
        ]

    def api_paths(self) -> list[str]:
        return [
            urlsplit(url).path
            for _, url in self.requests
            if self.same_origin(url) and urlsplit(url).path.startswith("/api/")
        ]

    def unexpected_console(self) -> list[str]:
        return [
            text
            for text in self.console_errors
            if not any(text.startswith(prefix) for prefix in self.expected_console)
        ]

    def assert_clean(self) -> None:
        assert self.foreign_requests() == [], "requests to other hosts"
        assert self.page_errors == [], "uncaught JavaScript errors"
        assert self.unexpected_console() == [], "console errors"
        for path in self.api_paths():
            assert path.startswith("/api/v1/"), path


@dataclass
class WebPage:
    page: Page
    log: BrowserLog
    base: str

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        """Screenshot from the top of the page (the header is sticky)."""
        page = self.page
        if full_page:  # walk down the page so that lazy images below the fold load
            page.evaluate(
                """async () => {
                    for (let y = 0; y < document.documentElement.scrollHeight; y += 400) {
                        window.scrollTo(0, y);
                        await new Promise(r => setTimeout(r, 30));
                    }
                }"""
            )
        page.evaluate("() => window.scrollTo(0, 0)")
        page.wait_for_function(
            """full => [...document.images].filter(i => {
                const r = i.getBoundingClientRect();
                return full || (r.bottom > 0 && r.top < window.innerHeight);
            }).every(i => i.complete)""",
            arg=full_page,
            timeout=5_000,
        )
        page.screenshot(path=str(path), full_page=full_page)


def _open_page(browser: Browser, server_url: str, viewport: dict[str, int]) -> Iterator[WebPage]:
    context = browser.new_context(
        viewport={"width": viewport["width"], "height": viewport["height"]},
        locale="cs-CZ",
        timezone_id="Europe/Prague",
        service_workers="block",
    )
    log = BrowserLog(origin=server_url)

    def route(route: Route) -> None:
        request = route.request
        if log.same_origin(request.url) or request.url.startswith("data:"):
            route.continue_()
        else:  # never leaves the machine; foreign_requests() reports it
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("request", lambda r: log.requests.append((r.resource_type, r.url)))
    page.on(
        "console",
        lambda m: (
            log.console_errors.append(f"{m.text} @ {m.location.get('url', '')}")
            if m.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda e: log.page_errors.append(str(e)))
    page.set_default_timeout(15_000)
    try:
        yield WebPage(page=page, log=log, base=server_url)
    finally:
        context.close()


@pytest.fixture
def web(browser: Browser, server_url: str) -> Iterator[WebPage]:
    """A fresh desktop-sized page (1280×900) with its network/console log."""
    yield from _open_page(browser, server_url, {"width": 1280, "height": 900})


@pytest.fixture
def phone(browser: Browser, server_url: str) -> Iterator[WebPage]:
    """A fresh phone-sized page (390×844)."""
    yield from _open_page(browser, server_url, {"width": 390, "height": 844})
