"""vimax_nb.client.connect: environment, the kernel's own server, a private server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.client import Client, VimaxConnectError, connect, discovery

from ..server.conftest import jp_server_config, vimax_workdir  # noqa: F401
from .test_api import fixture_closing, fixture_server_url, fixture_token  # noqa: F401

PID = 424242


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No default client, no VIMAX_NB_* variables, an empty runtime dir, a fake parent pid."""
    monkeypatch.setattr(discovery, "_default", None)
    monkeypatch.setattr(discovery, "_private", None)
    for name in ("VIMAX_NB_URL", "VIMAX_NB_TOKEN", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("JPY_PARENT_PID", str(PID))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_the_environment_variables_name_the_server(
    monkeypatch: pytest.MonkeyPatch, server_url: str, token: str, closing: Any
) -> None:
    monkeypatch.setenv("VIMAX_NB_URL", server_url)
    monkeypatch.setenv("VIMAX_NB_TOKEN", token)
    client = closing(await asyncio.to_thread(connect, start_server=False))
    assert isinstance(client, Client)
    assert client.url == server_url
    assert client.token == token
    assert "total_workflows" in await asyncio.to_thread(client.coordinator)
    # one default client per process
    assert await asyncio.to_thread(connect) is client
    assert discovery.default_client() is client


async def test_the_kernels_own_server_is_found_by_its_runtime_file(
    server_url: str, token: str, jp_http_port: int, jp_base_url: str, closing: Any
) -> None:
    runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
    decoy = {"pid": PID + 1, "url": f"http://127.0.0.1:{closed_port()}/", "token": "x"}
    (runtime / f"jpserver-{PID + 1}.json").write_text(json.dumps(decoy))
    info = {
        "pid": PID,
        "url": f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
        "base_url": jp_base_url,
        "token": token,
        "root_dir": "/nowhere",
    }
    (runtime / f"jpserver-{PID}.json").write_text(json.dumps(info))

    client = closing(await asyncio.to_thread(connect, start_server=False))
    assert client.url == server_url
    assert client.token == token
    assert client.workdir == Path("/nowhere/vimax-work")
    assert "total_workflows" in await asyncio.to_thread(client.coordinator)


async def test_a_runtime_file_without_a_token_uses_jupyterhubs(
    monkeypatch: pytest.MonkeyPatch, server_url: str, token: str, closing: Any
) -> None:
    runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
    info = {"pid": PID, "url": server_url, "base_url": "", "token": ""}
    (runtime / "jpserver-elsewhere.json").write_text(json.dumps(info))
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
    client = closing(await asyncio.to_thread(connect, start_server=False))
    assert client.token == token


async def test_a_wrong_token_is_reported(monkeypatch: pytest.MonkeyPatch, server_url: str) -> None:
    monkeypatch.setenv("VIMAX_NB_URL", server_url)
    monkeypatch.setenv("VIMAX_NB_TOKEN", "wrong")
    with pytest.raises(VimaxConnectError) as caught:
        await asyncio.to_thread(connect, start_server=False)
    whats = [what for what, _ in caught.value.attempts]
    assert whats[0] == f"VIMAX_NB_URL={server_url}"
    assert "HTTP 403" in caught.value.attempts[0][1]


def test_when_nothing_works_the_error_lists_every_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    monkeypatch.setenv("VIMAX_NB_URL", url)
    with pytest.raises(VimaxConnectError) as caught:
        connect(start_server=False)
    attempts = caught.value.attempts
    assert len(attempts) == 3
    assert attempts[0][0] == f"VIMAX_NB_URL={url}"
    assert "refused" in attempts[0][1].lower()
    assert f"pid {PID}" in attempts[1][0]
    assert "no jpserver-*.json" in attempts[1][1]
    assert "start_server=False" in attempts[2][1]
    text = str(caught.value)
    assert all(what in text and why in text for what, why in attempts)
    assert discovery.default_client() is None

    monkeypatch.delenv("VIMAX_NB_URL")
    with pytest.raises(VimaxConnectError) as unset:
        connect(start_server=False)
    assert unset.value.attempts[0] == ("VIMAX_NB_URL", "not set")


@pytest.mark.skipif(find_spec("jupyter_server") is None, reason="no jupyter_server")
def test_a_private_server_is_started_and_stopped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        client = connect()
        server = discovery._private
        assert server is not None
        assert server.running
        assert client.url == server.url
        assert client.url.startswith("http://127.0.0.1:")
        assert client.workdir == tmp_path.resolve() / "vimax-work"
        assert "total_workflows" in client.coordinator()
        assert connect() is client
    finally:
        discovery.disconnect()
    assert not server.running
    assert discovery.default_client() is None
