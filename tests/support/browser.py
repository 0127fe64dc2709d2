"""A real browser for the console's tests: Debian's Chromium, driven by Playwright.

Playwright's own browser download cannot reach its server from this kind of machine, so
the tests launch the system's Chromium (`make test` installs Debian's package when it is
missing): EXPORTS_CHROMIUM if set, else `chromium` on the PATH. Without one the tests
fail, saying how to get it; they are never skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from app.platform.settings import PROJECT_ROOT

SCREENS = PROJECT_ROOT / "var" / "console-screens"
# Chromium's calls home are refused by a closed network, many at a time: switch them off.
QUIET_FLAGS = [
    "--no-sandbox",  # runs as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Chromium the tests drive; fails the test run with how to install it."""
    path = os.environ.get("EXPORTS_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "the console's browser tests need Chromium: `apt-get install chromium` (as root; "
            "`make test` does it), or set EXPORTS_CHROMIUM to a Chromium/Chrome binary",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole run; each test opens its own context."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=QUIET_FLAGS)
        yield launched
        launched.close()


def screenshot(page: Page, name: str) -> None:
    """The whole page as var/console-screens/<name>.png, for reviewers."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)
