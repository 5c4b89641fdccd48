"""Shared test set-up: pytest-jupyter runs the coroutine tests and serves jupyter_server."""

from typing import Any

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def vimax_config() -> dict[str, Any]:
    """VimaxApp traits for one test server (parametrize ``vimax_config``, or use
    ``tests.server.conftest.vimax``, to change them)."""
    return {}
