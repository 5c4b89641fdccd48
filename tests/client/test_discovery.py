"""vimax_nb.client.connect: environment, the kernel's own server, a private server."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from vimax_nb.client import Client, VimaxConnectError, connect, discovery
from vimax_nb.client.private import READY_TIMEOUT, PrivateServer
from vimax_nb.protocol import CoordinatorMetricsEvent

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


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def runtime_file(name: str, **info: Any) -> None:
    runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
    (runtime / f"jpserver-{name}.json").write_text(json.dumps(info))


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
    assert isinstance(await asyncio.to_thread(client.coordinator), CoordinatorMetricsEvent)
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
    assert isinstance(await asyncio.to_thread(client.coordinator), CoordinatorMetricsEvent)


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


async def test_the_hubs_token_goes_with_vimax_nb_url_when_there_is_no_token(
    monkeypatch: pytest.MonkeyPatch, server_url: str, token: str, closing: Any
) -> None:
    monkeypatch.setenv("VIMAX_NB_URL", server_url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
    client = closing(await asyncio.to_thread(connect, start_server=False))
    assert client.token == token
    assert discovery.default_source() == f"VIMAX_NB_URL={server_url}"


async def test_the_server_serving_this_folder_is_found_by_its_root_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server_url: str, token: str, closing: Any
) -> None:
    """As with ``vimax-nb serve`` or JupyterLab started in the folder; a stale file of a
    server that is gone, and a live one of another folder, are passed over."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    runtime_file("gone", pid=dead_pid(), url=server_url, token="stale", root_dir=str(folder))
    other = f"http://127.0.0.1:{closed_port()}/"
    runtime_file("other", pid=os.getpid(), url=other, token="x", root_dir=str(tmp_path))
    runtime_file("here", pid=os.getpid(), url=server_url, token=token, root_dir=str(folder))

    client = closing(await asyncio.to_thread(connect, start_server=False))
    assert client.url == server_url
    assert client.token == token
    assert client.workdir == folder / "vimax-work"
    assert discovery.default_source() == (
        f"the Jupyter server of pid {os.getpid()} serving {folder.resolve()}"
    )
    found = await asyncio.to_thread(discovery.folder_server, folder)
    assert found is not None
    closing(found[0])
    assert (found[0].url, found[1]) == (server_url, os.getpid())


async def test_the_process_holding_the_folders_database_is_its_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server_url: str, token: str, closing: Any
) -> None:
    """A server whose root_dir is elsewhere but whose workdir is this folder's: the pid
    in the database's lock file names it."""
    monkeypatch.chdir(tmp_path)
    lock = tmp_path / "vimax-work" / "vimax.sqlite3.lock"
    lock.parent.mkdir()
    lock.write_text(str(os.getpid()))
    runtime_file("holder", pid=os.getpid(), url=server_url, token=token, root_dir="/elsewhere")
    client = closing(await asyncio.to_thread(connect, start_server=False))
    assert client.url == server_url
    assert "serving" in (discovery.default_source() or "")


def test_when_nothing_works_the_error_lists_every_attempt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{closed_port()}/"
    runtime_file("stale", pid=dead_pid(), url=url, token="", root_dir=str(tmp_path))
    with pytest.raises(VimaxConnectError) as caught:
        connect(start_server=False)
    attempts = caught.value.attempts
    assert len(attempts) == 4
    assert attempts[0] == ("VIMAX_NB_URL", "not set")
    assert f"pid {PID}" in attempts[1][0]
    assert "no jpserver-*.json" in attempts[1][1]
    assert attempts[2][0] == f"a Jupyter server serving {tmp_path.resolve()}"
    assert "no live jpserver-*.json" in attempts[2][1]
    assert "start_server=False" in attempts[3][1]
    text = str(caught.value)
    # nothing failed for a reason of its own: nothing is put first
    assert caught.value.decisive is None
    assert text.startswith("could not connect to a vimax-nb server\ntried:\n")
    assert all(what in text and why in text for what, why in attempts)
    assert discovery.default_client() is None


async def test_a_set_vimax_nb_url_that_fails_is_an_error_never_a_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server_url: str, token: str
) -> None:
    """This folder has a working server, and a private one could be started: neither is
    used when VIMAX_NB_URL names a server that cannot be reached or refuses the token;
    the error names the url and the reason on its first line, as for a given url."""
    monkeypatch.chdir(tmp_path)
    runtime_file("here", pid=os.getpid(), url=server_url, token=token, root_dir=str(tmp_path))
    closed = f"http://127.0.0.1:{closed_port()}/"
    for url, token_env, reason in [(closed, token, "refused"), (server_url, "wrong", "403")]:
        monkeypatch.setenv("VIMAX_NB_URL", url)
        monkeypatch.setenv("VIMAX_NB_TOKEN", token_env)
        with pytest.raises(VimaxConnectError) as caught:
            await asyncio.to_thread(connect)
        [(what, why)] = caught.value.attempts
        assert what == f"VIMAX_NB_URL={url}"
        assert reason in why.lower()
        assert str(caught.value) == f"could not connect to a vimax-nb server: {what}: {why}"
        assert discovery.private_server() is None
        assert discovery.default_client() is None
        # exactly as the same url given to connect() is
        with pytest.raises(VimaxConnectError) as given:
            await asyncio.to_thread(connect, url, token_env)
        assert given.value.attempts == [(f"the given url {url}", why)]
    assert not (tmp_path / "vimax-work").exists()


def test_a_private_servers_log_gives_its_decisive_line(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with log.open("w+") as file:
        server = PrivateServer(tmp_path, log=file)
        server._own_log = True  # read it as a log of its own
        file.write(
            "[I 2026-01-01 10:00:00.000 ServerApp] starting\n"
            "[C 2026-01-01 10:00:00.100 ServerApp] Bad config: port only accepts one value\n"
            "[I 2026-01-01 10:00:00.200 ServerApp] shutting down\n"
        )
        file.flush()
        assert server.log_problem() == "Bad config: port only accepts one value"
        file.seek(0)
        file.truncate()
        file.write("Traceback (most recent call last):\n  ...\nRuntimeError: no openai key\n")
        file.flush()
        assert server.log_problem() == "RuntimeError: no openai key"
        file.seek(0)
        file.truncate()
        file.write("just words\n")
        file.flush()
        assert server.log_problem() == "just words"


needs_jupyter_server = pytest.mark.skipif(
    find_spec("jupyter_server") is None, reason="no jupyter_server"
)


@needs_jupyter_server
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
        assert isinstance(client.coordinator(), CoordinatorMetricsEvent)
        assert connect() is client
        assert (discovery.default_source() or "").startswith("a private jupyter server")
        assert server.startup_seconds is not None
        assert server.startup_seconds < READY_TIMEOUT
        # it is in its own session: a Ctrl-C in the terminal reaches this process only
        assert server.pid is not None
        assert os.getsid(server.pid) == server.pid
        log = Path(server.log.name)
    finally:
        discovery.disconnect()
    assert server.process is not None
    assert server.process.poll() == 0  # stopped, cleanly, by SIGTERM
    assert not log.exists()  # the log of a clean run is removed
    assert discovery.default_client() is None


class Owner(NamedTuple):
    process: subprocess.Popen[str]
    url: str
    pid: int


def start_owner(folder: Path) -> Owner:
    """A Python process that starts a private server, says where, then waits on stdin."""
    code = (
        "import sys\n"
        "from vimax_nb.client import discovery\n"
        "client = discovery.connect()\n"
        "print(client.url, discovery.private_server().pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=folder,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "the owner did not start a server"
    url, pid = line.split()
    return Owner(process, url, int(pid))


def wait_refused(url: str, timeout: float = 10.0) -> None:
    """Until the server at ``url`` refuses connections (it is another process's child)."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "api", timeout=1).close()
        except urllib.error.HTTPError:
            pass
        except OSError:
            return
        assert time.monotonic() < deadline, f"{url} still answers after {timeout} s"
        time.sleep(0.05)


@needs_jupyter_server
def test_a_private_server_stops_when_its_process_exits_or_is_killed(tmp_path: Path) -> None:
    owner = start_owner(tmp_path)
    assert owner.process.stdin is not None
    owner.process.stdin.close()  # the owner exits normally: atexit stops the server
    assert owner.process.wait(30) == 0
    wait_refused(owner.url, timeout=1.0)

    owner = start_owner(tmp_path)
    owner.process.send_signal(signal.SIGKILL)  # no atexit: the server sees it is orphaned
    owner.process.wait(30)
    wait_refused(owner.url)
    assert owner.process.stdin is not None
    owner.process.stdin.close()


@needs_jupyter_server
def test_a_private_server_that_finds_the_database_locked_says_so_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Another server holds this folder's database but cannot be found (its runtime file
    is elsewhere): the error names the holder instead of timing out."""
    monkeypatch.chdir(tmp_path)
    lock = tmp_path / "vimax-work" / "vimax.sqlite3.lock"
    lock.parent.mkdir()
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write(str(os.getpid()))
        held.flush()
        with pytest.raises(VimaxConnectError) as caught:
            connect()
    folder, private = caught.value.attempts[2:]
    assert f"held by pid {os.getpid()}" in folder[1]
    # the decisive reason is the first line, the rest is what else was tried
    first, also, *rest = str(caught.value).splitlines()
    assert first.startswith("could not connect to a vimax-nb server: a private jupyter server")
    assert "already open" in first
    assert also == "also tried:"
    assert rest[0] == "  - VIMAX_NB_URL: not set"
    assert private[0].startswith("a private jupyter server")
    assert "already open" in private[1]
    assert f"holder pid {os.getpid()}" in private[1]
    assert discovery.private_server() is None
