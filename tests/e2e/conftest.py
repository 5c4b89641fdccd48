"""Browser tests: JupyterLab and Notebook 7 in headless Chromium (``-m "not e2e"`` leaves
them out; without /usr/bin/chromium they are skipped). They are plain synchronous tests:
Playwright's sync API runs its own loop, apart from pytest-jupyter's.

``VIMAX_E2E_SHOTS=/tmp/e2e-shots pytest tests/e2e`` also saves a PNG of each panel there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .harness import CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT_MS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "e2e: end-to-end tests in a real browser (headless Chromium, JupyterLab, Notebook 7)",
    )


@pytest.fixture
def jp_asyncio_loop() -> None:
    """pytest-jupyter's autouse loop, left out: these tests run no server in-process, and
    while Playwright's sync API works, its loop is this thread's running loop, which
    pytest-jupyter would take for its own and close."""
    return None


@pytest.fixture
def jp_server_cleanup() -> None:
    """pytest-jupyter's autouse server clean-up, left out (no server in-process)."""
    return None


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Chromium from the system (never a downloaded one), for this package's
    tests only: its loop must be gone before pytest-jupyter's tests run again."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
