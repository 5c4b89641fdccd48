"""A real Jupyter server with the extension and a Client for it (import the fixtures).

The client blocks its calling thread (REST) or works on the connection's thread while
the server runs on the test's loop: blocking calls go through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from vimax_nb.client import Client

from ..server.conftest import (  # noqa: F401  (fixtures that enable the extension)
    jp_server_config,
    service_of,
    small_params,
    vimax_workdir,
)


@pytest.fixture(name="live_client")
def fixture_live_client(
    jp_serverapp: Any, jp_fetch: Any, jp_http_port: int, jp_base_url: str, jp_asyncio_loop: Any
) -> Iterator[Client]:
    """A Client of the server (``jp_fetch`` makes pytest-jupyter listen), closed at the end
    while the server's loop runs."""
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    token = jp_serverapp.identity_provider.token
    client = Client(url, token, workdir=service_of(jp_serverapp).workdir)
    jp_asyncio_loop.run_until_complete(service_of(jp_serverapp).ensure_started())
    try:
        yield client
    finally:
        jp_asyncio_loop.run_until_complete(asyncio.to_thread(client.close))
