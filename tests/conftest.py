"""Shared test set-up: pytest-jupyter runs the coroutine tests and serves jupyter_server."""

pytest_plugins = ["pytest_jupyter.jupyter_server"]
