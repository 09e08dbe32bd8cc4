"""Browser tests: Playwright (the Python package) driving Debian's headless chromium.

No browser is ever downloaded: Playwright launches the system's ``chromium`` (installed by
``scripts/bootstrap dev``). When a test fails, a full-page screenshot and the page's HTML
are kept in ``.e2e-artifacts/`` (or ``$BIRDBALANCE_E2E_ARTIFACTS``) and their paths are
printed in the test's report.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.databases import in_ci
from tests.servers import Admin, Server

ARTIFACTS = Path(
    os.environ.get("BIRDBALANCE_E2E_ARTIFACTS", Path(__file__).parents[2] / ".e2e-artifacts")
)


def chromium_path() -> str | None:
    return os.environ.get("BIRDBALANCE_CHROMIUM") or shutil.which("chromium")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One chromium for the browser tests; stopped after them, because Playwright's sync
    API keeps an event loop running in this thread while it lives (later tests that
    call ``asyncio.run`` would fail)."""
    executable = chromium_path()
    if executable is None:
        if in_ci():
            pytest.fail("chromium is not installed: scripts/bootstrap dev installs it")
        pytest.skip("browser tests left out: no chromium (run scripts/bootstrap dev)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # As root (containers, CI) chromium will not start its sandbox.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=executable, args=args)
        yield launched
        launched.close()


@pytest.fixture(scope="package")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("e2e")
    server = Server(db_url=f"sqlite:///{folder / 'e2e.db'}", log_path=folder / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def e2e_admin(dashboard_server: Server) -> Iterator[Admin]:
    client = Admin(dashboard_server.url)
    yield client
    client.http.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; kept as files if the test fails."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    tab.problems = problems
    yield tab
    if request.node.stash.get(_FAILED, False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = ARTIFACTS / request.node.name.replace("/", "_")
        try:
            tab.screenshot(path=f"{stem}.png", full_page=True)
            Path(f"{stem}.html").write_text(tab.content())
            print(f"\nkept {stem}.png and {stem}.html")
        except Exception as exc:  # the page may be gone with what failed
            print(f"\nno screenshot: {exc}")
    context.close()
